using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit;
using static Microsoft.Playwright.Assertions;

namespace PromptFaces.EndToEnd;

/// <summary>One person in their own browser profile: a page, their cookies, and the steps they take through the UI.</summary>
public sealed class BrowserUser(LiveApp app, IBrowserContext context, IPage page, string email) : IAsyncDisposable
{
    public IPage Page { get; } = page;
    public string Email { get; } = email;

    /// <summary>Opens a fresh profile and registers <paramref name="email"/> through the real form.</summary>
    public static async Task<BrowserUser> RegisterAsync(LiveApp app, string email)
    {
        var context = await app.NewContextAsync();
        var page = await context.NewPageAsync();
        var user = new BrowserUser(app, context, page, email);
        await page.GotoAsync("/account/register");
        await page.GetByTestId("register-email").FillAsync(email);
        await page.GetByTestId("register-password").FillAsync(LiveApp.Password);
        await page.GetByTestId("register-confirm").FillAsync(LiveApp.Password);
        await page.GetByTestId("register-submit").ClickAsync();
        await Expect(page.GetByTestId("user-name")).ToHaveTextAsync(email);
        return user;
    }

    /// <summary>Goes to an app page and waits until its interactive circuit is up (clicks made while the page is only
    /// prerendered would be lost).</summary>
    public async Task<IResponse?> OpenAsync(string path)
    {
        var response = await Page.GotoAsync(path);
        await WaitInteractiveAsync();
        return response;
    }

    public Task WaitInteractiveAsync() =>
        Page.Locator("[data-testid=app-ready][data-interactive=true]").WaitForAsync(new() { State = WaitForSelectorState.Attached });

    /// <summary>A screenshot of the whole page into the run's artefacts; returns its path.</summary>
    public async Task<string> ScreenshotAsync(string name)
    {
        var path = Path.Combine(LiveApp.ArtifactsFolder, name + ".png");
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        return path;
    }

    /// <summary>GET with this user's cookies, outside the page (the way a pasted URL or a script would fetch it).</summary>
    public async Task<int> StatusOfAsync(string path)
    {
        var response = await context.APIRequest.GetAsync(new Uri(app.BaseAddress, path).ToString(), new() { MaxRedirects = 0 });
        return response.Status;
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        var response = await context.APIRequest.GetAsync(new Uri(app.BaseAddress, path).ToString());
        Assert.True(response.Ok, $"GET {path} answered {response.Status}");
        return (await response.JsonAsync())!.Value;
    }

    /// <summary>Fills the Create form and submits it; returns the new job's id (from the address the page moves to).</summary>
    public async Task<Guid> SubmitPromptAsync(string prompt, int steps, long seed)
    {
        await OpenAsync("/create");
        await Page.Locator("#prompt").FillAsync(prompt);
        await Expect(Page.GetByTestId("token-count")).ToHaveAttributeAsync("data-tokens", new Regex("^[1-9][0-9]*$"));
        await Page.Locator("#seed").FillAsync(seed.ToString());
        await Page.Locator("#seed").PressAsync("Tab");
        await Page.Locator("#steps").FillAsync(steps.ToString());
        await Page.Locator("#steps").PressAsync("Tab");
        await Expect(Page.Locator("#submit")).ToBeEnabledAsync();
        await Page.Locator("#submit").ClickAsync();
        try
        {
            await Page.WaitForURLAsync(new Regex(@"/create\?job=[0-9a-f-]{36}"));
        }
        catch (TimeoutException e)
        {
            // Say why the form did not move on: a field error or a refusal on the page, and where the page is.
            var shown = await Page.Locator("[data-testid$='-error'], [data-testid=submit-refusal]").AllInnerTextsAsync();
            var shot = await ScreenshotAsync("failure-submit");
            throw new TimeoutException($"Submitting '{prompt}' did not open the job: the page stayed at {Page.Url}; " +
                $"messages shown: [{string.Join(" | ", shown.Where(t => !string.IsNullOrWhiteSpace(t)))}]; screenshot {shot}.", e);
        }
        var panel = Page.GetByTestId("job-panel");
        await panel.WaitForAsync();
        return Guid.Parse((await panel.GetAttributeAsync("data-job-id"))!);
    }

    /// <summary>Opens the MudSelect marked <paramref name="testId"/> and picks its first option. The mark may sit on the
    /// select's root or on an element inside it, so the select is found either way.</summary>
    public async Task ChooseFirstOptionAsync(string testId)
    {
        const string isSelect = "contains(concat(' ', normalize-space(@class), ' '), ' mud-select ')";
        var select = Page.GetByTestId(testId).Locator($"xpath=ancestor-or-self::*[{isSelect}] | descendant::*[{isSelect}]").First;
        await select.ClickAsync();
        await Page.Locator(".mud-popover-open .mud-list-item").First.ClickAsync();
    }

    /// <summary>The frames the page's progress script received for a job, as it logged them.</summary>
    public async Task<IReadOnlyList<FrameRecord>> FramesAsync(Guid jobId)
    {
        var json = await Page.EvaluateAsync<string>("id => JSON.stringify((window.promptFacesFrames || []).filter(f => f.jobId === id))", jobId.ToString());
        return JsonSerializer.Deserialize<List<FrameRecord>>(json, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
    }

    public async ValueTask DisposeAsync() => await context.DisposeAsync();
}

/// <summary>One frame as wwwroot/js/progress.js logged it: times in Unix milliseconds on the browser's clock (the
/// same machine's clock as the server's here), and a hash of the JPEG bytes.</summary>
public sealed record FrameRecord(string JobId, int Step, double? ProducedAt, double ReceivedAt, double? DecodedAt, int Bytes, long Hash);
