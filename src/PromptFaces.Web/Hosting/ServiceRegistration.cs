using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using MudBlazor.Services;
using PromptFaces.Data;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Files;
using PromptFaces.Data.Jobs;
using PromptFaces.Engine;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;
using PromptFaces.Web.Components.Account;
using PromptFaces.Web.Jobs;
using PromptFaces.Web.Progress;
using PromptFaces.Web.Security;
using PromptFaces.Web.Services;

namespace PromptFaces.Web.Hosting;

/// <summary>The app's registrations, one method per concern, so Program.cs reads as a list.</summary>
public static class ServiceRegistration
{
    /// <summary>SQLite in the data folder (<c>PromptFaces:DataFolder</c>, or <c>ConnectionStrings:PromptFaces</c>), the
    /// image store, the job store and the data-protection keys.</summary>
    public static WebApplicationBuilder AddPromptFacesData(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<DataPaths>();
        static void Configure(IServiceProvider sp, DbContextOptionsBuilder db) => db.UseSqlite(sp.GetRequiredService<DataPaths>().ConnectionString);
        // Pages and services use short-lived contexts from the factory (Blazor circuits live long); Identity's stores
        // take a scoped context.
        builder.Services.AddDbContextFactory<PromptFacesDbContext>(Configure);
        builder.Services.AddDbContext<PromptFacesDbContext>(Configure, ServiceLifetime.Scoped, ServiceLifetime.Singleton);
        builder.Services.AddSingleton(sp => new ImageFileStore(sp.GetRequiredService<DataPaths>().ImagesFolder));
        builder.Services.AddSingleton<EfJobStore>();
        builder.Services.AddSingleton<ISchedulerStore>(sp => sp.GetRequiredService<EfJobStore>());
        builder.Services.AddSingleton<ISchedulingPolicySource, EfSchedulingPolicySource>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddHostedService<DatabaseInitializer>();
        // Sign-in cookies and antiforgery tokens stay valid across restarts: their keys live with the data.
        builder.Services.AddDataProtection();
        builder.Services.AddOptions<KeyManagementOptions>().Configure<DataPaths, ILoggerFactory>((o, paths, logs) =>
            o.XmlRepository = new FileSystemXmlRepository(new DirectoryInfo(paths.KeysFolder), logs));
        return builder;
    }

    /// <summary>Identity with cookies: password rules, lockout, the User and Admin roles.</summary>
    public static WebApplicationBuilder AddPromptFacesIdentity(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AccountOptions>().BindConfiguration(AccountOptions.Section);
        builder.Services.AddCascadingAuthenticationState();
        builder.Services.AddAuthentication(o =>
        {
            o.DefaultScheme = IdentityConstants.ApplicationScheme;
            o.DefaultSignInScheme = IdentityConstants.ExternalScheme;
        }).AddIdentityCookies();
        builder.Services.ConfigureApplicationCookie(cookie =>
        {
            cookie.LoginPath = "/account/login";
            cookie.AccessDeniedPath = "/account/access-denied";
            cookie.Cookie.Name = "PromptFaces.Auth";
            // APIs and the hub answer 401/403; only pages redirect to the sign-in form.
            cookie.Events.OnRedirectToLogin = context => RedirectOrStatus(context, StatusCodes.Status401Unauthorized);
            cookie.Events.OnRedirectToAccessDenied = context => RedirectOrStatus(context, StatusCodes.Status403Forbidden);
            // A disabled account's cookie stops working at its next request (the security stamp, also changed, would
            // only be checked every half hour).
            var validate = cookie.Events.OnValidatePrincipal;
            cookie.Events.OnValidatePrincipal = async context =>
            {
                if (context.Principal?.FindFirstValue(ClaimTypes.NameIdentifier) is { } userId
                    && await context.HttpContext.RequestServices.GetRequiredService<DisabledAccounts>().IsDisabledAsync(userId, context.HttpContext.RequestAborted))
                {
                    context.RejectPrincipal();
                    await context.HttpContext.SignOutAsync(IdentityConstants.ApplicationScheme);
                    return;
                }
                await validate(context);
            };
        });
        builder.Services.AddSingleton<DisabledAccounts>();
        builder.Services.AddAuthorization();
        builder.Services.AddIdentityCore<AppUser>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.SignIn.RequireConfirmedAccount = false;
                o.Password.RequiredLength = 8;
                o.Password.RequireDigit = true;
                o.Password.RequireLowercase = true;
                o.Password.RequireUppercase = false;
                o.Password.RequireNonAlphanumeric = false;
                o.Lockout.AllowedForNewUsers = true;
                o.Lockout.MaxFailedAccessAttempts = 5;
                o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(5);
            })
            .AddRoles<IdentityRole>()
            .AddEntityFrameworkStores<PromptFacesDbContext>()
            .AddSignInManager()
            .AddDefaultTokenProviders();
        builder.Services.AddScoped<AccountService>();
        return builder;
    }

    /// <summary>The engine, the token counter, and the fair-share scheduler (one worker per configured device) with
    /// its usage accounting, policy cache and quota gate.</summary>
    public static WebApplicationBuilder AddPromptFacesGeneration(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<EngineOptions>().BindConfiguration(EngineOptions.Section);
        builder.Services.AddOptions<SchedulerOptions>().BindConfiguration(SchedulerOptions.Section)
            .PostConfigure<IOptions<LimitsOptions>>((scheduler, limits) =>
            {
                // The form's per-user cap on open jobs is the queued-jobs quota unless the scheduler sets its own.
                scheduler.DefaultQuotas = scheduler.DefaultQuotas with
                {
                    MaxQueued = scheduler.DefaultQuotas.MaxQueued ?? limits.Value.MaxQueuedJobsPerUser,
                };
            })
            .Validate(o => o.Devices.All(d => d.MaxBatch is >= 1 and <= 256), "Every scheduler device needs a MaxBatch from 1 to 256.")
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<ModelPaths>();
        builder.Services.AddSingleton<IGenerationEngine, TorchGenerationEngine>();
        builder.Services.AddSingleton<IGenerationEngineFactory, DeviceEngineFactory>();
        builder.Services.AddSingleton<IPromptTokenizer, ClipPromptTokenizer>();
        builder.Services.AddSingleton(sp => new UsageAccounting(sp.GetRequiredService<IOptions<SchedulerOptions>>().Value.UsageHalfLife));
        builder.Services.AddSingleton(sp => new SchedulingPolicyCache(sp.GetRequiredService<ISchedulingPolicySource>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptions<SchedulerOptions>>().Value.PolicyRefreshInterval));
        builder.Services.AddSingleton<QuotaGate>();
        builder.Services.AddSingleton<SchedulerMetrics>();
        builder.Services.AddSingleton<FairShareScheduler>();
        builder.Services.AddSingleton<IJobControl>(sp => sp.GetRequiredService<FairShareScheduler>());
        builder.Services.AddHostedService(sp => sp.GetRequiredService<FairShareScheduler>());
        return builder;
    }

    /// <summary>Pages, MudBlazor, the progress hub and the services the pages use.</summary>
    public static WebApplicationBuilder AddPromptFacesWeb(this WebApplicationBuilder builder)
    {
        builder.Services.AddRazorComponents().AddInteractiveServerComponents();
        builder.Services.AddMudServices();
        builder.Services.AddSignalR().AddMessagePackProtocol();
        builder.Services.AddOptions<LimitsOptions>().BindConfiguration(LimitsOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddProblemDetails();

        builder.Services.AddSingleton<JobProgressFeed>();
        builder.Services.AddSingleton<IFrameSender, HubFrameSender>();
        builder.Services.AddSingleton<FrameDispatcher>();
        builder.Services.AddSingleton<IProgressNotifier, WebProgressNotifier>();
        builder.Services.AddSingleton<SubmissionRateLimiter>();
        builder.Services.AddSingleton<QueueEstimator>();
        builder.Services.AddSingleton<JobSubmissionService>();
        builder.Services.AddSingleton<LibraryService>();
        builder.Services.AddSingleton<TeamService>();
        builder.Services.AddSingleton<SchedulingAdminService>();
        return builder;
    }

    private static Task RedirectOrStatus(Microsoft.AspNetCore.Authentication.RedirectContext<Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationOptions> context, int status)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/api") || path.StartsWithSegments("/hubs") || MetricsRegistration.IsMetricsRequest(context.HttpContext))
            context.Response.StatusCode = status;
        else
            context.Response.Redirect(context.RedirectUri);
        return Task.CompletedTask;
    }
}
