using System.Net;
using Microsoft.Extensions.DependencyInjection;
using PromptFaces.Data;
using PromptFaces.Web.Services;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>
/// The people of the matrix and what they can reach: the owner has an image in a gallery shared with a team the
/// teammate is in, and an image in no gallery; the outsider is in no team; the admin is an admin.
/// </summary>
public sealed class MatrixFixture : IAsyncLifetime
{
    public const string SharedPrompt = "a shared face with blue eyes";
    public const string PrivatePrompt = "a private face with a scar";

    public AppFactory App { get; } = new();
    public Dictionary<string, UserClient> Clients { get; } = new();
    public Guid SharedImage { get; private set; }
    public Guid PrivateImage { get; private set; }
    public Guid PrivateJob { get; private set; }
    public Guid Gallery { get; private set; }

    public async ValueTask InitializeAsync()
    {
        Clients["admin"] = await App.RegisterAsync(AppFactory.AdminEmail);
        Clients["owner"] = await App.RegisterAsync("owner@example.com");
        Clients["teammate"] = await App.RegisterAsync("teammate@example.com");
        Clients["outsider"] = await App.RegisterAsync("outsider@example.com");
        Clients["anonymous"] = App.NewClient();

        var owner = Clients["owner"];
        var sharedJob = await owner.SubmitOkAsync(new { prompt = SharedPrompt, steps = 3 });
        PrivateJob = await owner.SubmitOkAsync(new { prompt = PrivatePrompt, steps = 3 });
        SharedImage = (await owner.WaitForStatusAsync(sharedJob, "Completed")).GetProperty("imageId").GetGuid();
        PrivateImage = (await owner.WaitForStatusAsync(PrivateJob, "Completed")).GetProperty("imageId").GetGuid();

        var ownerViewer = new Viewer(await App.UserIdAsync("owner@example.com"), IsAdmin: false);
        var adminViewer = new Viewer(await App.UserIdAsync(AppFactory.AdminEmail), IsAdmin: true);
        var teams = App.Services.GetRequiredService<TeamService>();
        var library = App.Services.GetRequiredService<LibraryService>();
        Assert.Null(await teams.CreateTeamAsync(adminViewer, "Designers"));
        int teamId = (await teams.TeamsAsync(adminViewer)).Single(t => t.Name == "Designers").Id;
        Assert.Null(await teams.AddMemberAsync(adminViewer, teamId, "owner@example.com"));
        Assert.Null(await teams.AddMemberAsync(adminViewer, teamId, "teammate@example.com"));
        Gallery = await library.CreateGalleryAsync(ownerViewer, "Team picks", "faces for the team");
        Assert.True(await library.AddToGalleryAsync(ownerViewer, Gallery, SharedImage));
        Assert.True(await library.SetShareAsync(ownerViewer, Gallery, teamId, shared: true));
    }

    public ValueTask DisposeAsync()
    {
        foreach (var client in Clients.Values) client.Dispose();
        App.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Every image, download, animation and gallery route, as API and as page, for owner, teammate, outsider, admin and
/// anonymous. Not allowed reads the same as not there (404); anonymous API calls get 401 and pages send to sign-in.
/// </summary>
public sealed class AuthorizationMatrixTests(MatrixFixture fixture) : IClassFixture<MatrixFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const int Ok = 200, Unauthorized = 401, NotFound = 404, ToSignIn = 302;

    public static TheoryData<string, string, int> Cases()
    {
        var data = new TheoryData<string, string, int>();
        string[] imageApis = ["/api/images/{shared}", "/api/images/{shared}/thumbnail", "/api/images/{shared}/download", "/api/images/{shared}/animation"];
        foreach (var route in imageApis)
        {
            data.Add(route, "owner", Ok);
            data.Add(route, "teammate", Ok);
            data.Add(route, "outsider", NotFound);
            data.Add(route, "admin", Ok);
            data.Add(route, "anonymous", Unauthorized);
            var privateRoute = route.Replace("{shared}", "{private}");
            data.Add(privateRoute, "owner", Ok);
            data.Add(privateRoute, "teammate", NotFound);
            data.Add(privateRoute, "outsider", NotFound);
            data.Add(privateRoute, "admin", Ok);
            data.Add(privateRoute, "anonymous", Unauthorized);
        }
        foreach (var (route, anonymous) in new[] { ("/api/galleries/{gallery}", Unauthorized), ("/galleries/{gallery}", ToSignIn), ("/images/{shared}", ToSignIn) })
        {
            data.Add(route, "owner", Ok);
            data.Add(route, "teammate", Ok);
            data.Add(route, "outsider", NotFound);
            data.Add(route, "admin", Ok);
            data.Add(route, "anonymous", anonymous);
        }
        data.Add("/images/{private}", "owner", Ok);
        data.Add("/images/{private}", "teammate", NotFound);
        data.Add("/images/{private}", "outsider", NotFound);
        data.Add("/images/{private}", "admin", Ok);
        data.Add("/images/{private}", "anonymous", ToSignIn);
        // Jobs are private even from teammates.
        data.Add("/api/jobs/{privateJob}", "owner", Ok);
        data.Add("/api/jobs/{privateJob}", "teammate", NotFound);
        data.Add("/api/jobs/{privateJob}", "outsider", NotFound);
        data.Add("/api/jobs/{privateJob}", "anonymous", Unauthorized);
        // Guessing an id finds nothing, for anyone.
        foreach (var who in new[] { "owner", "admin" })
        {
            data.Add("/api/images/{unknown}", who, NotFound);
            data.Add("/api/galleries/{unknown}", who, NotFound);
            data.Add("/images/{unknown}", who, NotFound);
            data.Add("/galleries/{unknown}", who, NotFound);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Route_answers_by_who_asks(string route, string who, int expected)
    {
        var path = route.Replace("{shared}", fixture.SharedImage.ToString())
            .Replace("{private}", fixture.PrivateImage.ToString())
            .Replace("{privateJob}", fixture.PrivateJob.ToString())
            .Replace("{gallery}", fixture.Gallery.ToString())
            .Replace("{unknown}", Guid.NewGuid().ToString());

        using var response = await fixture.Clients[who].Http.GetAsync(path, Ct);
        Assert.Equal(expected, (int)response.StatusCode);

        var body = await response.Content.ReadAsStringAsync(Ct);
        if (expected == ToSignIn)
            Assert.StartsWith("/account/login", response.Headers.Location?.PathAndQuery);
        if (expected != Ok)
        {
            // Nothing of the owner's work leaks into a refusal.
            Assert.DoesNotContain(MatrixFixture.SharedPrompt, body);
            Assert.DoesNotContain(MatrixFixture.PrivatePrompt, body);
        }
        else if (route.StartsWith("/images/"))
        {
            Assert.Contains(route.Contains("{private}") ? MatrixFixture.PrivatePrompt : MatrixFixture.SharedPrompt, body);
        }
    }

    [Fact]
    public async Task A_teammate_sees_the_shared_gallery_in_their_list_and_an_outsider_does_not()
    {
        var library = fixture.App.Services.GetRequiredService<LibraryService>();
        var teammate = new Viewer(await fixture.App.UserIdAsync("teammate@example.com"), false);
        var outsider = new Viewer(await fixture.App.UserIdAsync("outsider@example.com"), false);
        Assert.Contains(await library.GalleriesAsync(teammate, Ct), g => g.Id == fixture.Gallery && !g.OwnedByViewer);
        Assert.DoesNotContain(await library.GalleriesAsync(outsider, Ct), g => g.Id == fixture.Gallery);
        Assert.Null(await library.SetFavouriteAsync(outsider, fixture.SharedImage, true, Ct));
        Assert.True(await library.SetFavouriteAsync(teammate, fixture.SharedImage, true, Ct));
    }

    [Fact]
    public async Task Only_admins_open_the_admin_page()
    {
        using var admin = await fixture.Clients["admin"].Http.GetAsync("/admin", Ct);
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
        Assert.Contains("Teams and members", await admin.Content.ReadAsStringAsync(Ct));
        using var user = await fixture.Clients["owner"].Http.GetAsync("/admin", Ct);
        Assert.DoesNotContain("Teams and members", await user.Content.ReadAsStringAsync(Ct));
    }
}
