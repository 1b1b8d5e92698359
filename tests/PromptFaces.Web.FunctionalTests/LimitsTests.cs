using System.Net;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>A host whose engine holds every job (so jobs stay open) and whose limits are small.</summary>
public sealed class LimitsAppFactory : AppFactory
{
    public LimitsAppFactory()
    {
        Settings["PromptFaces:Limits:SubmissionsPerMinute"] = "3";
        Settings["PromptFaces:Limits:MaxQueuedJobsPerUser"] = "2";
        Engine.Hold = true;
    }
}

/// <summary>The per-user queue cap, the submission rate limit and prompt validation, each with its message.</summary>
public sealed class LimitsTests(LimitsAppFactory app) : IClassFixture<LimitsAppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_user_with_the_maximum_of_open_jobs_is_told_to_wait_or_cancel()
    {
        using var user = await app.RegisterAsync("busy@example.com");
        await user.SubmitOkAsync(new { prompt = "a child with freckles" });
        await user.SubmitOkAsync(new { prompt = "a child with freckles" });

        var (status, body) = await user.SubmitAsync(new { prompt = "a child with freckles" });

        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        var detail = body.GetProperty("detail").GetString();
        Assert.Contains("You already have 2 jobs queued or running", detail);
        Assert.Contains("cancel one", detail);
    }

    [Fact]
    public async Task A_user_over_the_submission_rate_is_told_when_to_try_again()
    {
        using var user = await app.RegisterAsync("hasty@example.com");
        for (int i = 0; i < 3; i++)
        {
            // Cancelled at once, so the queue cap never applies: only the rate does.
            var jobId = await user.SubmitOkAsync(new { prompt = $"a face number {i}" });
            using var cancel = await user.Http.PostAsync($"/api/jobs/{jobId}/cancel", null, Ct);
            await user.WaitForStatusAsync(jobId, "Cancelled");
        }

        var (status, body) = await user.SubmitAsync(new { prompt = "one more face" });

        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        var detail = body.GetProperty("detail").GetString();
        Assert.Contains("You have submitted 3 jobs within a minute", detail);
        Assert.Matches(@"Try again in \d+ seconds\.", detail);
    }

    [Theory]
    [InlineData("", "Enter a prompt that describes the face.")]
    [InlineData("   ", "Enter a prompt that describes the face.")]
    [InlineData("a face\nwith a line break", "control characters")]
    [InlineData("a face \u202Ewith reversed text", "direction of text")]
    public async Task Invalid_prompts_are_refused_with_a_message(string prompt, string expected)
    {
        using var user = await app.RegisterAsync($"validator{Guid.NewGuid():N}@example.com");
        var (status, body) = await user.SubmitAsync(new { prompt });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(expected, body.GetProperty("errors").GetProperty("Prompt")[0].GetString());
    }

    [Fact]
    public async Task A_prompt_over_500_characters_is_refused_with_its_length()
    {
        using var user = await app.RegisterAsync("verbose@example.com");
        var (status, body) = await user.SubmitAsync(new { prompt = new string('a', 501) });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("The prompt is 501 characters long; the limit is 500.", body.GetProperty("errors").GetProperty("Prompt")[0].GetString());
    }
}
