using System.Text.RegularExpressions;
using Xunit;
using static Microsoft.Playwright.Assertions;

namespace PromptFaces.EndToEnd;

/// <summary>
/// A running job survives the user wandering off: after a reload, and in a second tab, the live preview picks up
/// where the job is; then Cancel stops it, and the job ends cancelled without an image.
/// </summary>
public sealed class ComeBackAndCancelTests(LiveApp app)
{
    [Fact]
    public async Task A_reload_and_a_second_tab_pick_up_the_live_preview_and_cancel_stops_the_job()
    {
        await using var user = await BrowserUser.RegisterAsync(app, "comeback@e2e.example");
        var jobId = await user.SubmitPromptAsync("a sad woman with long red hair", steps: 1000, seed: 3);
        var counter = user.Page.GetByTestId("step-counter");
        await Expect(counter).ToHaveAttributeAsync("data-step", new Regex("^([5-9]|[1-9][0-9]+)$"), new() { Timeout = 120_000 });
        int before = int.Parse((await counter.GetAttributeAsync("data-step"))!);

        // A reload: the page finds the job again and frames arrive for steps after the ones seen before.
        await user.Page.ReloadAsync();
        await user.WaitInteractiveAsync();
        await Expect(user.Page.GetByTestId("job-panel")).ToHaveAttributeAsync("data-status", "Running");
        await WaitForFrameAfterAsync(user.Page, jobId, before);
        await user.ScreenshotAsync("11-reloaded-live-preview");

        // A second tab of the same user, opened from History's link to the job.
        var second = await user.Page.Context.NewPageAsync();
        await second.GotoAsync($"/create?job={jobId}");
        await second.Locator("[data-testid=app-ready][data-interactive=true]").WaitForAsync(new() { State = Microsoft.Playwright.WaitForSelectorState.Attached });
        await WaitForFrameAfterAsync(second, jobId, before);

        // Cancel from the first tab: both tabs see the job end, cancelled, and no image is made.
        await user.Page.GetByTestId("cancel-job").ClickAsync();
        await Expect(user.Page.GetByTestId("job-panel")).ToHaveAttributeAsync("data-status", "Cancelled", new() { Timeout = 60_000 });
        await Expect(second.GetByTestId("job-panel")).ToHaveAttributeAsync("data-status", "Cancelled", new() { Timeout = 60_000 });
        var job = await user.GetJsonAsync($"/api/jobs/{jobId}");
        Assert.Equal("Cancelled", job.GetProperty("status").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, job.GetProperty("imageId").ValueKind);
        Assert.InRange(job.GetProperty("stepsDone").GetInt32(), before + 1, 999);
        await user.ScreenshotAsync("12-cancelled");
    }

    /// <summary>Waits until the page's progress script has shown a frame of the job later than <paramref name="step"/>.</summary>
    private static async Task WaitForFrameAfterAsync(Microsoft.Playwright.IPage page, Guid jobId, int step) =>
        await page.WaitForFunctionAsync(
            "([id, after]) => (window.promptFacesFrames || []).some(f => f.jobId === id && f.step > after && f.bytes > 0)",
            new object[] { jobId.ToString(), step }, new() { Timeout = 60_000 });
}
