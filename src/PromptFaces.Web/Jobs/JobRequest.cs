using System.Globalization;
using PromptFaces.Web.Hosting;

namespace PromptFaces.Web.Jobs;

/// <summary>What the Create form (or the JSON API) asks for. Defaults are the form's.</summary>
public sealed record JobRequest
{
    public string Prompt { get; init; } = "";
    public string? NegativePrompt { get; init; }
    /// <summary>Null: a random seed is drawn (and shown).</summary>
    public long? Seed { get; init; }
    public int Steps { get; init; } = 100;
    public double TruncationPsi { get; init; } = 0.7;
    /// <summary>The engine's default (OptimisationSettings.LearningRate), which a test keeps in step.</summary>
    public double LearningRate { get; init; } = 0.2;
    public int Cutouts { get; init; } = 8;
    /// <summary>Best-of-N starting faces: the engine's default (OptimisationSettings.Starts), which a test keeps in step.</summary>
    public int Starts { get; init; } = 4;
}

/// <summary>Checks a <see cref="JobRequest"/> and says, per field, what to change.</summary>
public static class JobRequestValidator
{
    public const int MaxCutouts = 32;
    public const int MaxStarts = 16;

    /// <summary>Field name → message; empty when the request is fine.</summary>
    public static IReadOnlyDictionary<string, string> Validate(JobRequest request, LimitsOptions limits)
    {
        var errors = new Dictionary<string, string>();
        if (PromptValidator.Validate(request.Prompt, limits.MaxPromptLength, required: true) is { } p) errors[nameof(JobRequest.Prompt)] = p;
        if (PromptValidator.Validate(request.NegativePrompt, limits.MaxPromptLength, required: false) is { } n) errors[nameof(JobRequest.NegativePrompt)] = n;
        if (request.Seed is < 0) errors[nameof(JobRequest.Seed)] = "The seed must be zero or a positive whole number.";
        if (request.Steps < 1 || request.Steps > limits.MaxSteps) errors[nameof(JobRequest.Steps)] = $"Steps must be between 1 and {limits.MaxSteps}.";
        if (!(request.TruncationPsi >= 0 && request.TruncationPsi <= 2)) errors[nameof(JobRequest.TruncationPsi)] = "Truncation psi must be between 0 and 2.";
        if (!(request.LearningRate > 0 && request.LearningRate <= 1)) errors[nameof(JobRequest.LearningRate)] = "The learning rate must be above 0 and at most 1.";
        if (request.Cutouts < 1 || request.Cutouts > MaxCutouts) errors[nameof(JobRequest.Cutouts)] = $"Cutouts must be between 1 and {MaxCutouts}.";
        if (request.Starts < 1 || request.Starts > MaxStarts) errors[nameof(JobRequest.Starts)] = $"Best-of-N must be between 1 and {MaxStarts}.";
        return errors;
    }
}

/// <summary>Rules for prompt text. Prompts are always rendered as text, never as markup; these rules keep them
/// readable and stop text that would disguise itself (control and bidirectional-override characters).</summary>
public static class PromptValidator
{
    public static string? Validate(string? prompt, int maxLength, bool required)
    {
        if (string.IsNullOrWhiteSpace(prompt))
            return required ? "Enter a prompt that describes the face." : null;
        if (prompt.Length > maxLength)
            return $"The prompt is {prompt.Length} characters long; the limit is {maxLength}.";
        foreach (var c in prompt)
        {
            if (char.IsControl(c))
                return "The prompt contains control characters (such as line breaks or tabs); remove them.";
            if (c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069')
                return "The prompt contains characters that change the direction of text; remove them.";
            if (CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.OtherNotAssigned)
                return "The prompt contains characters that are not valid text.";
        }
        return null;
    }
}
