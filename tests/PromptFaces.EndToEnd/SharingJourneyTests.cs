using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit;
using static Microsoft.Playwright.Assertions;

namespace PromptFaces.EndToEnd;

/// <summary>
/// The whole product in one story, in a real browser: an admin makes a team of two; the first member makes a face and
/// watches it form, stars it and puts it in a gallery shared with the team; the teammate sees it; an outsider cannot,
/// neither through the pages nor through the image's direct address. Screenshots of each stage go to the artefacts.
/// </summary>
public sealed class SharingJourneyTests(LiveApp app)
{
    private const string Prompt = "An image with the face of a woman with blonde hair and purple eyes";
    private const int Steps = 30;

    [Fact]
    public async Task A_face_made_by_one_member_is_seen_live_starred_shared_with_the_team_and_hidden_from_outsiders()
    {
        await using var admin = await BrowserUser.RegisterAsync(app, LiveApp.AdminEmail);
        await using var maker = await BrowserUser.RegisterAsync(app, "maker@e2e.example");
        await using var teammate = await BrowserUser.RegisterAsync(app, "teammate@e2e.example");
        await using var outsider = await BrowserUser.RegisterAsync(app, "outsider@e2e.example");

        try
        {
            // The admin makes a team with the two members.
            await admin.OpenAsync("/admin");
            await admin.Page.Locator("#team-name").FillAsync("Face Lab");
            await admin.Page.GetByTestId("team-create").ClickAsync();
            var team = admin.Page.GetByTestId("team").Filter(new() { Has = admin.Page.GetByTestId("team-title").GetByText("Face Lab", new() { Exact = true }) });
            await team.WaitForAsync();
            var teamId = (await team.GetAttributeAsync("data-team-id"))!;
            foreach (var member in new[] { maker, teammate })
            {
                await team.Locator($"#member-email-{teamId}").FillAsync(member.Email);
                await team.GetByTestId("team-member-add").ClickAsync();
                await Expect(team.GetByTestId("team-member").GetByText(member.Email)).ToBeVisibleAsync();
            }
            await admin.ScreenshotAsync("01-admin-team");

            // The maker submits a prompt and watches the preview change step by step until the final image.
            var jobId = await maker.SubmitPromptAsync(Prompt, Steps, seed: 1);
            var panel = maker.Page.GetByTestId("job-panel");
            await Expect(maker.Page.GetByTestId("step-counter")).ToHaveAttributeAsync("data-step", new Regex("^([3-9]|[1-9][0-9]+)$"), new() { Timeout = 120_000 });
            await maker.ScreenshotAsync("02-maker-live-preview");
            await Expect(panel).ToHaveAttributeAsync("data-status", "Completed", new() { Timeout = 180_000 });
            var result = maker.Page.GetByTestId("result-image");
            await Expect(result).ToBeVisibleAsync();
            await maker.ScreenshotAsync("03-maker-result");

            var frames = await maker.FramesAsync(jobId);
            var previews = frames.Where(f => f.Bytes > 0 && f.Step < Steps).ToList();
            Assert.True(previews.Select(f => f.Hash).Distinct().Count() >= 3,
                $"Expected at least 3 distinct preview frames before the final image; got steps [{string.Join(", ", previews.Select(f => f.Step))}].");
            Assert.Equal(previews.Select(f => f.Step).OrderBy(s => s), previews.Select(f => f.Step)); // never out of order

            var job = await maker.GetJsonAsync($"/api/jobs/{jobId}");
            Assert.Equal("Completed", job.GetProperty("status").GetString());
            var imageId = job.GetProperty("imageId").GetGuid();
            Assert.Equal(200, await maker.StatusOfAsync($"/api/images/{imageId}"));

            // A star on the result; the favourites page lists it.
            var star = panel.GetByTestId("favourite-star");
            await star.ClickAsync();
            await Expect(star).ToHaveAttributeAsync("data-favourite", "true");
            await maker.OpenAsync("/favourites");
            await Expect(maker.Page.Locator($"[data-testid=image-card][data-image-id='{imageId}']")).ToBeVisibleAsync();
            await maker.ScreenshotAsync("04-maker-favourites");

            // A gallery with the image, shared with the team.
            await maker.OpenAsync("/galleries");
            await maker.Page.Locator("#gallery-name").FillAsync("Blonde and purple");
            await maker.Page.GetByTestId("gallery-create").ClickAsync();
            await maker.Page.WaitForURLAsync(new Regex("/galleries/[0-9a-f-]{36}$"));
            await maker.WaitInteractiveAsync();
            var galleryPath = new Uri(maker.Page.Url).AbsolutePath;
            var shareBox = maker.Page.Locator($"[data-testid=share-team][data-team-id='{teamId}']").Locator("xpath=descendant-or-self::input");
            await shareBox.CheckAsync();
            await maker.ChooseFirstOptionAsync("gallery-add-select");
            await maker.Page.GetByTestId("gallery-add").ClickAsync();
            await Expect(maker.Page.Locator($"[data-testid=image-card][data-image-id='{imageId}']")).ToBeVisibleAsync();
            await Expect(shareBox).ToBeCheckedAsync();
            await maker.ScreenshotAsync("05-maker-gallery-shared");

            // The teammate finds the gallery in their list, opens it and the image.
            await teammate.OpenAsync("/galleries");
            await teammate.Page.Locator($"[data-testid=gallery-item][href='{galleryPath}']").ClickAsync();
            await teammate.Page.WaitForURLAsync("**" + galleryPath);
            var card = teammate.Page.Locator($"[data-testid=image-card][data-image-id='{imageId}']");
            await Expect(card).ToBeVisibleAsync();
            await Expect(card).ToContainTextAsync("by maker@e2e.example");
            await teammate.ScreenshotAsync("06-teammate-gallery");
            await teammate.OpenAsync($"/images/{imageId}");
            await Expect(teammate.Page.GetByTestId("image-full")).ToBeVisibleAsync();
            await Expect(teammate.Page.GetByTestId("image-prompt")).ToHaveTextAsync(Prompt);
            Assert.Equal(200, await teammate.StatusOfAsync($"/api/images/{imageId}"));
            Assert.Equal(200, await teammate.StatusOfAsync($"/api/images/{imageId}/download"));
            await teammate.ScreenshotAsync("07-teammate-image");

            // The outsider: not in their gallery list; the gallery and image pages say not found; the direct image,
            // thumbnail and download addresses refuse.
            await outsider.OpenAsync("/galleries");
            await Expect(outsider.Page.Locator($"[data-testid=gallery-item][href='{galleryPath}']")).ToHaveCountAsync(0);
            var galleryResponse = await outsider.OpenAsync(galleryPath);
            await Expect(outsider.Page.GetByTestId("not-found")).ToBeVisibleAsync();
            Assert.Equal(404, galleryResponse!.Status);
            await outsider.ScreenshotAsync("08-outsider-gallery");
            var imagePageResponse = await outsider.OpenAsync($"/images/{imageId}");
            await Expect(outsider.Page.GetByTestId("not-found")).ToBeVisibleAsync();
            Assert.Equal(404, imagePageResponse!.Status);
            await Expect(outsider.Page.GetByTestId("image-full")).ToHaveCountAsync(0);
            // Pasted into the address bar. Chromium turns an empty 404 into a navigation error, so the response is
            // read as it passes.
            var directResponse = outsider.Page.WaitForResponseAsync(r => r.Url.EndsWith($"/api/images/{imageId}"));
            try { await outsider.Page.GotoAsync($"/api/images/{imageId}"); }
            catch (PlaywrightException e) when (e.Message.Contains("ERR_HTTP_RESPONSE_CODE_FAILURE")) { }
            var direct = await directResponse;
            Assert.Contains(direct.Status, new[] { 403, 404 });
            Assert.NotEqual("image/png", direct.Headers.GetValueOrDefault("content-type"));
            await outsider.ScreenshotAsync("09-outsider-direct-image-url");
            foreach (var path in new[] { $"/api/images/{imageId}/thumbnail", $"/api/images/{imageId}/download", $"/api/images/{imageId}/animation" })
                Assert.Contains(await outsider.StatusOfAsync(path), new[] { 403, 404 });
            Assert.Contains(await outsider.StatusOfAsync($"/api/jobs/{jobId}"), new[] { 403, 404 });
        }
        catch
        {
            // The state of every browser when it went wrong, beside the stage screenshots.
            foreach (var user in new[] { admin, maker, teammate, outsider })
                await user.ScreenshotAsync("failure-" + user.Email.Split('@')[0]);
            throw;
        }
    }
}
