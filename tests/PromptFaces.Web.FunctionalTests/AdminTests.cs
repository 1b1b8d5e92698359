using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using PromptFaces.Data;
using PromptFaces.Web.Services;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>
/// One worker with a batch of one, and shares and quotas re-read only once an hour: an admin's edit can take effect
/// only through the cache invalidation the admin service does, so a test that sees it take effect proves that no
/// restart (and no refresh) was needed.
/// </summary>
public sealed class AdminAppFactory : AppFactory
{
    public AdminAppFactory()
    {
        Settings["PromptFaces:Scheduler:DefaultMaxBatch"] = "1";
        Settings["PromptFaces:Scheduler:PolicyRefreshInterval"] = "01:00:00";
    }
}

/// <summary>The admin API and pages: the live queue, boosts, cancelling any job, share and quota edits, disabling
/// accounts, and who may reach them.</summary>
public sealed class AdminTests(AdminAppFactory app) : IClassFixture<AdminAppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private Task<UserClient> AdminAsync() => app.RegisterOrSignInAdminAsync();

    private Task<UserClient> SignInAsync(string email) => app.SignInAsync(email);

    private static async Task<HttpResponseMessage> PostSignInAsync(UserClient user, string email)
    {
        var html = await user.Http.GetStringAsync("/account/login", Ct);
        return await user.Http.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = AppFactory.AntiforgeryToken(html),
            ["_handler"] = "login",
            ["Input.Email"] = email,
            ["Input.Password"] = AppFactory.Password,
        }), Ct);
    }

    private static async Task<JsonElement> QueueAsync(UserClient admin)
    {
        using var response = await admin.Http.GetAsync("/api/admin/queue", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone();
    }

    private static async Task PutPolicyAsync(UserClient admin, string path, object policy)
    {
        using var response = await admin.Http.PutAsJsonAsync(path, policy, Ct);
        Assert.True(response.StatusCode == HttpStatusCode.NoContent, $"PUT {path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
    }

    /// <summary>Waits until no job of an earlier test is queued or running, so a held engine holds only this test's.</summary>
    private static async Task IdleAsync(UserClient admin)
    {
        using var timeout = new CancellationTokenSource(TestHelpers.Patience);
        while (true)
        {
            var queue = await QueueAsync(admin);
            if (queue.GetProperty("waiting").GetArrayLength() == 0 && queue.GetProperty("running").GetArrayLength() == 0) return;
            await Task.Delay(25, timeout.Token);
        }
    }

    private static async Task WaitForAdminStatusAsync(UserClient admin, Guid jobId, string status)
    {
        // Admins read any job through the same API.
        await admin.WaitForStatusAsync(jobId, status);
    }

    [Fact]
    public async Task Scheduler_quota_edits_by_an_admin_apply_to_the_next_submission_without_a_restart()
    {
        using var admin = await AdminAsync();
        using var user = await app.RegisterAsync("quota-edit@example.com");
        var userId = await app.UserIdAsync(user.Email);
        // Warm the policy cache: with an hour's refresh, only the edit's invalidation can change what it holds.
        await user.SubmitOkAsync(new { prompt = "a face before the edit", steps = 20 });

        await PutPolicyAsync(admin, $"/api/admin/users/{userId}/scheduling", new { maxStepsPerJob = 10 });

        var (status, body) = await user.SubmitAsync(new { prompt = "a face after the edit", steps = 20 });
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Contains("at most 10 steps", body.ToString());
        await user.SubmitOkAsync(new { prompt = "a short face after the edit", steps = 10 });

        // A team's default quota reaches its members who have none of their own.
        using var member = await app.RegisterAsync("team-default@example.com");
        var adminViewer = new Viewer(await app.UserIdAsync(AppFactory.AdminEmail), IsAdmin: true);
        var teams = app.Services.GetRequiredService<TeamService>();
        Assert.Null(await teams.CreateTeamAsync(adminViewer, "Quota team", Ct));
        int teamId = (await teams.TeamsAsync(adminViewer, Ct)).Single(t => t.Name == "Quota team").Id;
        Assert.Null(await teams.AddMemberAsync(adminViewer, teamId, member.Email, Ct));
        await member.SubmitOkAsync(new { prompt = "a member's face before the edit", steps = 6 });
        await PutPolicyAsync(admin, $"/api/admin/teams/{teamId}/scheduling", new { share = 2.0, maxStepsPerJob = 5 });
        var (memberStatus, memberBody) = await member.SubmitAsync(new { prompt = "a member's face after the edit", steps = 6 });
        Assert.Equal(HttpStatusCode.TooManyRequests, memberStatus);
        Assert.Contains("at most 5 steps", memberBody.ToString());
        // The new share is the one the scheduler works with.
        var teamRow = (await QueueAsync(admin)).GetProperty("teams").EnumerateArray()
            .Single(t => t.GetProperty("teamKey").GetString() == teamId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(2.0, teamRow.GetProperty("share").GetDouble());

        // Invalid values are refused with the reason.
        using var invalid = await admin.Http.PutAsJsonAsync($"/api/admin/users/{userId}/scheduling", new { share = -1.0 }, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("share", await invalid.Content.ReadAsStringAsync(Ct), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Scheduler_running_limit_raised_by_an_admin_admits_the_waiting_job_without_a_restart()
    {
        using var admin = await AdminAsync();
        using var user = await app.RegisterAsync("running-limit@example.com");
        var userId = await app.UserIdAsync(user.Email);
        await IdleAsync(admin);
        app.Engine.Hold = true;
        try
        {
            // A zero running limit: the job is accepted but cannot start.
            await PutPolicyAsync(admin, $"/api/admin/users/{userId}/scheduling", new { maxRunning = 0 });
            var job = await user.SubmitOkAsync(new { prompt = "a face that waits for its limit", steps = 3 });
            var queue = await QueueAsync(admin);
            Assert.Contains(queue.GetProperty("waiting").EnumerateArray(), w => w.GetProperty("jobId").GetGuid() == job);
            Assert.Equal("Queued", (await user.GetJobAsync(job)).GetProperty("status").GetString());

            await PutPolicyAsync(admin, $"/api/admin/users/{userId}/scheduling", new { maxRunning = 1 });

            await user.WaitForStatusAsync(job, "Running");
            app.Engine.Hold = false;
            await user.WaitForStatusAsync(job, "Completed");
        }
        finally
        {
            app.Engine.Hold = false;
        }
    }

    [Fact]
    public async Task Scheduler_admin_boost_puts_a_job_first_and_an_admin_cancels_another_users_running_job()
    {
        using var admin = await AdminAsync();
        using var user = await app.RegisterAsync("boosted@example.com");
        await IdleAsync(admin);
        app.Engine.Hold = true;
        try
        {
            var first = await user.SubmitOkAsync(new { prompt = "the first face", steps = 3 });
            await user.WaitForStatusAsync(first, "Running");
            var second = await user.SubmitOkAsync(new { prompt = "the second face", steps = 3 });
            var third = await user.SubmitOkAsync(new { prompt = "the third face", steps = 3 });

            var before = (await QueueAsync(admin)).GetProperty("waiting").EnumerateArray().Select(w => w.GetProperty("jobId").GetGuid()).ToList();
            Assert.True(before.IndexOf(second) < before.IndexOf(third), "first in, first out before the boost");

            using (var boost = await admin.Http.PutAsJsonAsync($"/api/admin/jobs/{third}/boost", new { boost = 5000.0 }, Ct))
                Assert.Equal(HttpStatusCode.NoContent, boost.StatusCode);
            // The store marks a job Running when a worker claims it; the worker lists it as running once admitted.
            var queue = await QueueAsync(admin);
            using (var timeout = new CancellationTokenSource(TestHelpers.Patience))
                while (queue.GetProperty("running").GetArrayLength() == 0)
                {
                    await Task.Delay(20, timeout.Token);
                    queue = await QueueAsync(admin);
                }
            var waiting = queue.GetProperty("waiting").EnumerateArray().ToList();
            Assert.Equal(third, waiting[0].GetProperty("jobId").GetGuid());
            Assert.Equal(1, waiting[0].GetProperty("rank").GetInt32());
            Assert.Equal(5000, waiting[0].GetProperty("boost").GetDouble());
            Assert.True(waiting[0].GetProperty("priority").GetDouble() > waiting[1].GetProperty("priority").GetDouble());
            var running = Assert.Single(queue.GetProperty("running").EnumerateArray());
            Assert.Equal(first, running.GetProperty("jobId").GetGuid());
            Assert.Equal(user.Email, running.GetProperty("owner").GetString());
            Assert.Single(queue.GetProperty("workers").EnumerateArray());
            Assert.Contains(queue.GetProperty("users").EnumerateArray(), u => u.GetProperty("email").GetString() == user.Email);

            using (var cancel = await admin.Http.PostAsync($"/api/admin/jobs/{first}/cancel", null, Ct))
                Assert.Equal(HttpStatusCode.NoContent, cancel.StatusCode);
            await user.WaitForStatusAsync(first, "Cancelled");
            // The freed slot goes to the boosted job, not to the older one.
            await user.WaitForStatusAsync(third, "Running");
            Assert.Equal("Queued", (await user.GetJobAsync(second)).GetProperty("status").GetString());

            using (var cancelQueued = await admin.Http.PostAsync($"/api/admin/jobs/{second}/cancel", null, Ct))
                Assert.Equal(HttpStatusCode.NoContent, cancelQueued.StatusCode);
            Assert.Equal("Cancelled", (await user.GetJobAsync(second)).GetProperty("status").GetString());
            using (var again = await admin.Http.PostAsync($"/api/admin/jobs/{second}/cancel", null, Ct))
                Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        }
        finally
        {
            app.Engine.Hold = false;
        }
    }

    [Fact]
    public async Task Disabling_a_user_cancels_their_jobs_ends_their_session_and_refuses_their_sign_in()
    {
        using var admin = await AdminAsync();
        using var user = await app.RegisterAsync("to-disable@example.com");
        var userId = await app.UserIdAsync(user.Email);
        Guid running, queued;
        await IdleAsync(admin);
        app.Engine.Hold = true;
        try
        {
            running = await user.SubmitOkAsync(new { prompt = "a face that was running", steps = 3 });
            await user.WaitForStatusAsync(running, "Running");
            queued = await user.SubmitOkAsync(new { prompt = "a face that was waiting", steps = 3 });

            using var disable = await admin.Http.PostAsync($"/api/admin/users/{userId}/disable", null, Ct);
            Assert.Equal(HttpStatusCode.OK, disable.StatusCode);
            var result = JsonDocument.Parse(await disable.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(2, result.GetProperty("cancelledJobs").GetInt32());

            // Both jobs end cancelled: the queued one at once, the running one at its next step boundary.
            Assert.Equal("Cancelled", (await admin.GetJobAsync(queued)).GetProperty("status").GetString());
            await WaitForAdminStatusAsync(admin, running, "Cancelled");
        }
        finally
        {
            app.Engine.Hold = false;
        }

        // The session they had is over, for the API and the pages.
        using (var api = await user.Http.GetAsync($"/api/jobs/{running}", Ct))
            Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        using (var page = await user.Http.GetAsync("/create", Ct))
        {
            Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
            Assert.StartsWith("/account/login", page.Headers.Location?.PathAndQuery);
        }
        // Signing in again, with the right password, is refused with the reason.
        using (var fresh = app.NewClient())
        using (var signIn = await PostSignInAsync(fresh, user.Email))
        {
            Assert.Equal(HttpStatusCode.OK, signIn.StatusCode);
            Assert.Contains("disabled by an administrator", await signIn.Content.ReadAsStringAsync(Ct));
        }
        // The admins' list shows the account as disabled; enabling it lets it sign in again.
        var settings = await app.Services.GetRequiredService<SchedulingAdminService>()
            .SettingsAsync(new Viewer(await app.UserIdAsync(AppFactory.AdminEmail), true), Ct);
        Assert.True(settings.Users.Single(u => u.UserId == userId).Disabled);
        using (var enable = await admin.Http.PostAsync($"/api/admin/users/{userId}/enable", null, Ct))
            Assert.Equal(HttpStatusCode.NoContent, enable.StatusCode);
        using var back = await SignInAsync(user.Email);
        await back.SubmitOkAsync(new { prompt = "a face after coming back", steps = 2 });
    }

    [Fact]
    public async Task An_admin_cannot_disable_their_own_account()
    {
        using var admin = await AdminAsync();
        var adminId = await app.UserIdAsync(AppFactory.AdminEmail);
        using var response = await admin.Http.PostAsync($"/api/admin/users/{adminId}/disable", null, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var still = await admin.Http.GetAsync("/api/admin/queue", Ct);
        Assert.Equal(HttpStatusCode.OK, still.StatusCode);
    }

    [Fact]
    public async Task Only_admins_reach_the_admin_api_and_pages()
    {
        using var admin = await AdminAsync();
        using var user = await app.RegisterAsync("not-an-admin@example.com");
        using var anonymous = app.NewClient();
        var userId = await app.UserIdAsync(user.Email);

        foreach (var (client, expected) in new[] { (user, HttpStatusCode.Forbidden), (anonymous, HttpStatusCode.Unauthorized) })
        {
            using (var queue = await client.Http.GetAsync("/api/admin/queue", Ct))
                Assert.Equal(expected, queue.StatusCode);
            using (var disable = await client.Http.PostAsync($"/api/admin/users/{userId}/disable", null, Ct))
                Assert.Equal(expected, disable.StatusCode);
            using (var edit = await client.Http.PutAsJsonAsync($"/api/admin/users/{userId}/scheduling", new { maxQueued = 100 }, Ct))
                Assert.Equal(expected, edit.StatusCode);
        }

        foreach (var page in new[] { "/admin/queue", "/admin/scheduling" })
        {
            using var asAdmin = await admin.Http.GetAsync(page, Ct);
            Assert.Equal(HttpStatusCode.OK, asAdmin.StatusCode);
            using var asUser = await user.Http.GetAsync(page, Ct);
            Assert.Equal(HttpStatusCode.Redirect, asUser.StatusCode);
            Assert.StartsWith("/account/access-denied", asUser.Headers.Location?.PathAndQuery);
            using var asAnonymous = await anonymous.Http.GetAsync(page, Ct);
            Assert.Equal(HttpStatusCode.Redirect, asAnonymous.StatusCode);
            Assert.StartsWith("/account/login", asAnonymous.Headers.Location?.PathAndQuery);
        }
        var queueHtml = await admin.Http.GetStringAsync("/admin/queue", Ct);
        Assert.Contains("data-testid=\"workers\"", queueHtml);
        Assert.Contains("data-testid=\"queue-users\"", queueHtml);
        // A member of two teams gets the choice of the team they are charged to.
        var adminViewer = new Viewer(await app.UserIdAsync(AppFactory.AdminEmail), IsAdmin: true);
        var teams = app.Services.GetRequiredService<TeamService>();
        foreach (var name in new[] { "Page team A", "Page team B" })
        {
            Assert.Null(await teams.CreateTeamAsync(adminViewer, name, Ct));
            int teamId = (await teams.TeamsAsync(adminViewer, Ct)).Single(t => t.Name == name).Id;
            Assert.Null(await teams.AddMemberAsync(adminViewer, teamId, user.Email, Ct));
        }
        var settingsHtml = await admin.Http.GetStringAsync("/admin/scheduling", Ct);
        Assert.Contains("data-testid=\"user-policy\"", settingsHtml);
        Assert.Contains("data-testid=\"team-policy\"", settingsHtml);
        Assert.Contains("data-testid=\"user-policy-team\"", settingsHtml);
        Assert.Contains(user.Email, settingsHtml);
    }
}
