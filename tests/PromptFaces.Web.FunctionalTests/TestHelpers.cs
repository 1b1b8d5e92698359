using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using PromptFaces.Data;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

public static class TestHelpers
{
    /// <summary>Generous: only a hung runner or a lost message takes this long, and then the test fails.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public static async Task<(HttpStatusCode Status, JsonElement Body)> SubmitAsync(this UserClient user, object request)
    {
        using var response = await user.Http.PostAsJsonAsync("/api/jobs", request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    public static async Task<Guid> SubmitOkAsync(this UserClient user, object request)
    {
        var (status, body) = await user.SubmitAsync(request);
        Assert.True(status == HttpStatusCode.Accepted, $"Submitting answered {(int)status}: {body}");
        return body.GetProperty("id").GetGuid();
    }

    public static async Task<JsonElement> GetJobAsync(this UserClient user, Guid jobId)
    {
        using var response = await user.Http.GetAsync($"/api/jobs/{jobId}");
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>Polls the job until <paramref name="done"/> holds for it; fails after <see cref="Patience"/>.</summary>
    public static async Task<JsonElement> WaitForJobAsync(this UserClient user, Guid jobId, Func<JsonElement, bool> done)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            var job = await user.GetJobAsync(jobId);
            if (done(job)) return job;
            await Task.Delay(25, timeout.Token);
        }
    }

    public static Task<JsonElement> WaitForStatusAsync(this UserClient user, Guid jobId, string status) =>
        user.WaitForJobAsync(jobId, j => j.GetProperty("status").GetString() == status);

    /// <summary>Waits until <paramref name="condition"/> holds; fails after <see cref="Patience"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (!condition())
        {
            try { await Task.Delay(10, timeout.Token); }
            catch (OperationCanceledException) { Assert.Fail($"Gave up waiting: {what}"); }
        }
    }

    /// <summary>A client signed in as <paramref name="email"/> through the sign-in form (the account must exist).</summary>
    public static async Task<UserClient> SignInAsync(this AppFactory app, string email)
    {
        var user = app.NewClient();
        var html = await user.Http.GetStringAsync("/account/login");
        using var response = await user.Http.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = AppFactory.AntiforgeryToken(html),
            ["_handler"] = "login",
            ["Input.Email"] = email,
            ["Input.Password"] = AppFactory.Password,
        }));
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"Signing in as {email} answered {(int)response.StatusCode}");
        user.Email = email;
        return user;
    }

    /// <summary>The configured admin: registered by the first test of a host that asks, signed in again by later ones.</summary>
    public static async Task<UserClient> RegisterOrSignInAdminAsync(this AppFactory app)
    {
        using (var scope = app.Services.CreateScope())
            if (!await scope.ServiceProvider.GetRequiredService<PromptFacesDbContext>().Users.AnyAsync(u => u.Email == AppFactory.AdminEmail))
                return await app.RegisterAsync(AppFactory.AdminEmail);
        return await app.SignInAsync(AppFactory.AdminEmail);
    }

    public static async Task<string> UserIdAsync(this AppFactory app, string email)
    {
        using var scope = app.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PromptFacesDbContext>();
        return await db.Users.Where(u => u.Email == email).Select(u => u.Id).SingleAsync();
    }
}
