using PromptFaces.Web.Api;
using PromptFaces.Web.Components;
using PromptFaces.Web.Hosting;
using PromptFaces.Web.Progress;

var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = ContentRoot.Choose(args) });
// The framework's and MudBlazor's static files come from the build's static web assets manifest in every environment
// (not only Development), so the build output runs as it is; a publish carries them itself.
builder.WebHost.UseStaticWebAssets();

builder.AddPromptFacesData()
       .AddPromptFacesIdentity()
       .AddPromptFacesGeneration()
       .AddPromptFacesWeb()
       .AddPromptFacesMetrics();

var app = builder.Build();

if (!app.Environment.IsDevelopment())
{
    app.UseExceptionHandler("/error", createScopeForErrors: true);
    app.UseHsts();
}
// Page requests get a friendly page for 404 and the like; the APIs, the hub and form posts (a failed antiforgery
// check is a 400) keep their bare status codes.
app.UseWhen(context => HttpMethods.IsGet(context.Request.Method)
        && !context.Request.Path.StartsWithSegments("/api") && !context.Request.Path.StartsWithSegments("/hubs")
        && !MetricsRegistration.IsMetricsRequest(context),
    pages => pages.UseStatusCodePagesWithReExecute("/not-found", createScopeForStatusCodePages: true));
app.UseAuthentication();
app.UseAuthorization();
app.UseAntiforgery();

app.MapStaticAssets();
app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
app.MapHub<ProgressHub>(ProgressHub.Path);
app.MapImageEndpoints();
app.MapJobEndpoints();
app.MapGalleryEndpoints();
app.MapAccountEndpoints();
app.MapAdminEndpoints();
app.MapPromptFacesMetrics();

app.Run();

/// <summary>The entry point, public so functional tests can host the app.</summary>
public partial class Program;
