using PromptFaces.Web.Hosting;
using PromptFaces.Web.Jobs;
using Xunit;

namespace PromptFaces.Web.Tests;

public sealed class SubmissionRateLimiterTests
{
    [Fact]
    public void The_window_slides_with_the_clock()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var limiter = new SubmissionRateLimiter(clock, TestOptions.Limits(perMinute: 2));

        Assert.True(limiter.TryAcquire("u", out _));
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.True(limiter.TryAcquire("u", out _));
        Assert.False(limiter.TryAcquire("u", out var retry));
        Assert.Equal(TimeSpan.FromSeconds(40), retry);     // until the first submission leaves the window
        Assert.True(limiter.TryAcquire("someone else", out _));

        clock.Advance(TimeSpan.FromSeconds(40));
        Assert.True(limiter.TryAcquire("u", out _));
        Assert.False(limiter.TryAcquire("u", out retry));
        Assert.Equal(TimeSpan.FromSeconds(20), retry);
    }
}

public sealed class JobRequestValidatorTests
{
    private static readonly LimitsOptions Limits = new();

    [Fact]
    public void Defaults_with_a_prompt_are_valid() =>
        Assert.Empty(JobRequestValidator.Validate(new JobRequest { Prompt = "a face" }, Limits));

    [Theory]
    [InlineData(nameof(JobRequest.Steps), "Steps must be between 1 and 1000.")]
    [InlineData(nameof(JobRequest.TruncationPsi), "Truncation psi must be between 0 and 2.")]
    [InlineData(nameof(JobRequest.LearningRate), "The learning rate must be above 0 and at most 1.")]
    [InlineData(nameof(JobRequest.Cutouts), "Cutouts must be between 1 and 32.")]
    [InlineData(nameof(JobRequest.Starts), "Best-of-N must be between 1 and 16.")]
    [InlineData(nameof(JobRequest.Seed), "The seed must be zero or a positive whole number.")]
    public void Out_of_range_settings_are_named_with_their_range(string field, string message)
    {
        var bad = field switch
        {
            nameof(JobRequest.Steps) => new JobRequest { Prompt = "a", Steps = 1001 },
            nameof(JobRequest.TruncationPsi) => new JobRequest { Prompt = "a", TruncationPsi = double.NaN },
            nameof(JobRequest.LearningRate) => new JobRequest { Prompt = "a", LearningRate = 0 },
            nameof(JobRequest.Cutouts) => new JobRequest { Prompt = "a", Cutouts = 0 },
            nameof(JobRequest.Starts) => new JobRequest { Prompt = "a", Starts = 17 },
            _ => new JobRequest { Prompt = "a", Seed = -1 },
        };
        var errors = JobRequestValidator.Validate(bad, Limits);
        Assert.Equal(message, Assert.Single(errors, e => e.Key == field).Value);
        Assert.Single(errors);
    }

    [Theory]
    [InlineData("a face with ünïcödé and emoji 😀", null)]
    [InlineData("a face\r\nover lines", "control characters")]
    [InlineData("\u2067hidden direction", "direction of text")]
    public void Prompt_characters(string prompt, string? expected)
    {
        var error = PromptValidator.Validate(prompt, 500, required: true);
        if (expected is null) Assert.Null(error);
        else Assert.Contains(expected, error);
    }

    [Fact]
    public void An_empty_negative_prompt_is_fine_but_a_long_one_is_not()
    {
        Assert.Null(PromptValidator.Validate("", 500, required: false));
        Assert.Equal("The prompt is 501 characters long; the limit is 500.", PromptValidator.Validate(new string('n', 501), 500, required: false));
    }
}
