using Bunit;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor.Services;
using PromptFaces.Scheduling;
using PromptFaces.Web.Components.Shared;
using PromptFaces.Web.Jobs;
using Xunit;

namespace PromptFaces.Web.Tests;

/// <summary>The Create form: live token count, truncation warning, validation messages, and what it submits.</summary>
public sealed class CreateFormTests : BunitContext
{
    private readonly List<JobRequest> _submitted = [];

    public CreateFormTests()
    {
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
        Services.AddSingleton(TestOptions.Limits());
    }

    private IRenderedComponent<CreateForm> Render(bool tokenizer = true, string? refusal = null)
    {
        Services.AddSingleton<IPromptTokenizer>(new FakeTokenizer(tokenizer));
        return Render<CreateForm>(p => p
            .Add(f => f.OnSubmit, (JobRequest r) => _submitted.Add(r))
            .Add(f => f.Refusal, refusal));
    }

    private static void Type(IRenderedComponent<CreateForm> form, string prompt) => form.Find("#prompt").Input(prompt);

    private static void Submit(IRenderedComponent<CreateForm> form) => form.Find("[data-testid=submit]").Click();

    [Fact]
    public void The_token_count_follows_the_prompt_as_it_is_typed()
    {
        var form = Render();
        Assert.Equal("2 / 16 tokens", form.Find("[data-testid=token-count]").TextContent);

        Type(form, "a woman with red hair");

        var count = form.Find("[data-testid=token-count]");
        Assert.Equal("7 / 16 tokens", count.TextContent);
        Assert.Equal("7", count.GetAttribute("data-tokens"));
        Assert.Empty(form.FindAll("[data-testid=token-warning]"));
    }

    [Fact]
    public void A_prompt_longer_than_the_context_shows_the_truncation_warning()
    {
        var form = Render();
        Type(form, string.Join(' ', Enumerable.Repeat("word", 20)));
        Assert.Equal("22 / 16 tokens", form.Find("[data-testid=token-count]").TextContent);
        Assert.Equal("The last 6 tokens will be dropped.", form.Find("[data-testid=token-warning]").TextContent.Trim());
    }

    [Fact]
    public void Without_models_the_count_says_it_is_unavailable()
    {
        var form = Render(tokenizer: false);
        Type(form, "a man");
        Assert.Contains("unavailable", form.Find("[data-testid=token-count]").TextContent);
    }

    [Fact]
    public void An_empty_prompt_is_not_submitted_and_says_what_to_do()
    {
        var form = Render();
        Submit(form);
        Assert.Empty(_submitted);
        Assert.Equal("Enter a prompt that describes the face.", form.Find("[data-testid=prompt-error]").TextContent);
    }

    [Fact]
    public void A_prompt_over_the_length_limit_is_refused_with_its_length()
    {
        var form = Render();
        Type(form, new string('x', 501));
        Submit(form);
        Assert.Empty(_submitted);
        Assert.Equal("The prompt is 501 characters long; the limit is 500.", form.Find("[data-testid=prompt-error]").TextContent);
    }

    [Theory]
    [InlineData("a face\twith a tab")]
    [InlineData("a face\u0007with a bell")]
    public void A_prompt_with_control_characters_is_refused(string prompt)
    {
        var form = Render();
        Type(form, prompt);
        Submit(form);
        Assert.Empty(_submitted);
        Assert.Contains("control characters", form.Find("[data-testid=prompt-error]").TextContent);
    }

    [Fact]
    public void Fixing_the_prompt_clears_its_error()
    {
        var form = Render();
        Submit(form);
        Assert.NotEmpty(form.FindAll("[data-testid=prompt-error]"));
        Type(form, "an old man with glasses");
        Assert.Empty(form.FindAll("[data-testid=prompt-error]"));
    }

    [Fact]
    public void A_valid_form_submits_the_prompt_with_the_shown_random_seed_and_defaults()
    {
        var form = Render();
        var shownSeed = long.Parse(form.Find("#seed").GetAttribute("value")!);
        Type(form, "  a smiling child  ");
        Submit(form);

        var request = Assert.Single(_submitted);
        Assert.Equal("  a smiling child  ", request.Prompt); // trimmed by the service when stored
        Assert.Equal(shownSeed, request.Seed);
        Assert.InRange(shownSeed, 0, int.MaxValue);
        Assert.Equal(new JobRequest().Steps, request.Steps);
        Assert.Equal(new JobRequest().TruncationPsi, request.TruncationPsi);
        Assert.Empty(form.FindAll("[data-testid=prompt-error]"));
    }

    [Fact]
    public void A_refusal_from_the_server_is_shown_as_text()
    {
        var form = Render(refusal: "You have submitted 10 jobs within a minute, the most allowed. Try again in 12 seconds.");
        Assert.Equal("You have submitted 10 jobs within a minute, the most allowed. Try again in 12 seconds.",
            form.Find("[data-testid=submit-refusal]").TextContent.Trim());
    }
}
