using System.Net;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>A host with no admin named in configuration, so the first account registered becomes the admin.</summary>
public sealed class FirstAdminAppFactory : AppFactory
{
    public FirstAdminAppFactory() => Settings["PromptFaces:AdminEmail"] = "";
}

/// <summary>Registration, password rules, the first-admin rule, lockout and signing out, through the real forms.</summary>
public sealed class AccountTests(FirstAdminAppFactory app) : IClassFixture<FirstAdminAppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<HttpResponseMessage> PostFormAsync(UserClient user, string page, string handler, Dictionary<string, string> fields)
    {
        var html = await user.Http.GetStringAsync(page, Ct);
        fields["__RequestVerificationToken"] = AppFactory.AntiforgeryToken(html);
        fields["_handler"] = handler;
        return await user.Http.PostAsync(page, new FormUrlEncodedContent(fields), Ct);
    }

    private static Task<HttpResponseMessage> SignInAsync(UserClient user, string email, string password) =>
        PostFormAsync(user, "/account/login", "login", new() { ["Input.Email"] = email, ["Input.Password"] = password });

    [Fact]
    public async Task The_first_account_is_an_admin_and_later_ones_are_not()
    {
        // A host of its own, so that no other test's account comes first.
        using var fresh = new FirstAdminAppFactory();
        using var first = await fresh.RegisterAsync("first@example.com");
        using var second = await fresh.RegisterAsync("second@example.com");

        using var firstPage = await first.Http.GetAsync("/admin", Ct);
        using var secondPage = await second.Http.GetAsync("/admin", Ct);

        Assert.Equal(HttpStatusCode.OK, firstPage.StatusCode);
        Assert.Contains("Teams and members", await firstPage.Content.ReadAsStringAsync(Ct));
        Assert.Equal(HttpStatusCode.Redirect, secondPage.StatusCode);
        Assert.StartsWith("/account/access-denied", secondPage.Headers.Location?.PathAndQuery);
    }

    [Fact]
    public async Task A_password_that_breaks_the_rules_is_refused_with_the_rule()
    {
        using var user = app.NewClient();
        using var response = await PostFormAsync(user, "/account/register", "register", new()
        {
            ["Input.Email"] = "weak@example.com",
            ["Input.Password"] = "abcdefgh",
            ["Input.ConfirmPassword"] = "abcdefgh",
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // the form again, not a redirect
        var html = await response.Content.ReadAsStringAsync(Ct);
        Assert.Contains("data-testid=\"register-error\"", html);
        Assert.Contains("at least one digit", html);
    }

    [Fact]
    public async Task Five_wrong_passwords_lock_the_account_even_against_the_right_one()
    {
        using (await app.RegisterAsync("target@example.com")) { }
        using var attacker = app.NewClient();
        for (int i = 1; i <= 5; i++)
        {
            using var wrong = await SignInAsync(attacker, "target@example.com", "WrongPassword9");
            // The fifth failure is the one that locks.
            Assert.Contains(i < 5 ? "The email or password is not right." : "This account is locked", await wrong.Content.ReadAsStringAsync(Ct));
        }

        using var right = await SignInAsync(attacker, "target@example.com", AppFactory.Password);

        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        Assert.Contains("This account is locked", await right.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task Signing_in_and_out_opens_and_closes_the_pages()
    {
        using (await app.RegisterAsync("inandout@example.com")) { }
        using var user = app.NewClient();
        using var signIn = await SignInAsync(user, "inandout@example.com", AppFactory.Password);
        Assert.Equal(HttpStatusCode.Redirect, signIn.StatusCode);
        using (var create = await user.Http.GetAsync("/create", Ct))
            Assert.Equal(HttpStatusCode.OK, create.StatusCode);

        var page = await user.Http.GetStringAsync("/create", Ct);
        using var signOut = await user.Http.PostAsync("/account/logout", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = AppFactory.AntiforgeryToken(page),
            ["returnUrl"] = "/account/login",
        }), Ct);
        Assert.Equal(HttpStatusCode.Redirect, signOut.StatusCode);

        using var after = await user.Http.GetAsync("/create", Ct);
        Assert.Equal(HttpStatusCode.Redirect, after.StatusCode);
        Assert.StartsWith("/account/login", after.Headers.Location?.PathAndQuery);
    }

    [Fact]
    public async Task Signing_out_without_the_antiforgery_token_is_refused()
    {
        using var user = await app.RegisterAsync("forged@example.com");
        using var forged = await user.Http.PostAsync("/account/logout", new FormUrlEncodedContent(new Dictionary<string, string> { ["returnUrl"] = "/" }), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        using var still = await user.Http.GetAsync("/create", Ct);
        Assert.Equal(HttpStatusCode.OK, still.StatusCode);
    }
}
