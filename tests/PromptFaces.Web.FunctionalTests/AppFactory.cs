using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using PromptFaces.Scheduling;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>
/// The real app on a fresh temporary data folder (SQLite file, image files), with the fake engine and tokenizer.
/// Extra settings go in through <see cref="Settings"/> before the first client is made.
/// </summary>
public class AppFactory : WebApplicationFactory<Program>
{
    public const string AdminEmail = "admin@example.com";
    public const string Password = "Password1";

    private readonly string _dataFolder = Directory.CreateTempSubdirectory("pf-web-tests-").FullName;

    public FakeGenerationEngine Engine { get; } = new();

    public Dictionary<string, string?> Settings { get; } = new()
    {
        ["PromptFaces:AdminEmail"] = AdminEmail,
        ["PromptFaces:Scheduler:PollInterval"] = "00:00:00.100",
        ["PromptFaces:Scheduler:DefaultMaxBatch"] = "4",
    };

    public string DataFolder => _dataFolder;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("PromptFaces:DataFolder", _dataFolder);
        foreach (var (key, value) in Settings) builder.UseSetting(key, value);
        builder.ConfigureTestServices(services =>
        {
            services.RemoveAll<IGenerationEngine>();
            services.AddSingleton<IGenerationEngine>(Engine);
            services.RemoveAll<IPromptTokenizer>();
            services.AddSingleton<IPromptTokenizer, FakePromptTokenizer>();
        });
    }

    /// <summary>A client with its own cookie jar that does not follow redirects (so tests see 302s).</summary>
    public UserClient NewClient()
    {
        var cookies = new CookieContainer();
        var client = CreateDefaultClient(new CookieHandler(cookies));
        return new UserClient(client, cookies, Server.BaseAddress);
    }

    /// <summary>Registers an account through the real form and returns a client signed in as it.</summary>
    public async Task<UserClient> RegisterAsync(string email)
    {
        var user = NewClient();
        var form = await user.Http.GetStringAsync("/account/register");
        using var response = await user.Http.PostAsync("/account/register", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = AntiforgeryToken(form),
            ["_handler"] = "register",
            ["Input.Email"] = email,
            ["Input.Password"] = Password,
            ["Input.ConfirmPassword"] = Password,
        }));
        if (response.StatusCode != HttpStatusCode.Redirect)
            throw new InvalidOperationException($"Registering {email} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        user.Email = email;
        return user;
    }

    public static string AntiforgeryToken(string html) =>
        Regex.Match(html, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value is { Length: > 0 } token
            ? token
            : throw new InvalidOperationException("The page has no antiforgery token.");

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            try { Directory.Delete(_dataFolder, recursive: true); }
            catch (IOException) { }
        }
    }

    private sealed class CookieHandler(CookieContainer cookies) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var uri = request.RequestUri!;
            var header = cookies.GetCookieHeader(uri);
            if (header.Length > 0) request.Headers.Add("Cookie", header);
            var response = await base.SendAsync(request, cancellationToken);
            if (response.Headers.TryGetValues("Set-Cookie", out var values))
                foreach (var value in values) cookies.SetCookies(uri, value);
            return response;
        }
    }
}

/// <summary>An HTTP client with its own cookies (a browser of one user).</summary>
public sealed class UserClient(HttpClient http, CookieContainer cookies, Uri baseAddress) : IDisposable
{
    public HttpClient Http { get; } = http;
    public CookieContainer Cookies { get; } = cookies;
    public string Email { get; set; } = "";

    /// <summary>The Cookie header this user sends, for clients that do not go through <see cref="Http"/> (the hub).</summary>
    public string CookieHeader => Cookies.GetCookieHeader(baseAddress);

    public void Dispose() => Http.Dispose();
}
