using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using PromptFaces.Data.Entities;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Web.Hosting;

/// <summary>
/// The scheduler's meter (<see cref="SchedulerMetrics.MeterName"/>) exported with OpenTelemetry as a Prometheus scrape
/// endpoint (<c>PromptFaces:Metrics</c>: <c>Path</c>, default <c>/metrics</c>; <c>AllowAnonymous</c>, default false,
/// so only admins may scrape; <c>Enabled</c>).
/// </summary>
public static class MetricsRegistration
{
    public static WebApplicationBuilder AddPromptFacesMetrics(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<MetricsOptions>().BindConfiguration(MetricsOptions.Section)
            .Validate(o => o.Path.StartsWith('/') && o.Path.Length > 1, "PromptFaces:Metrics:Path must start with '/'.")
            .ValidateOnStart();
        var options = builder.Configuration.GetSection(MetricsOptions.Section).Get<MetricsOptions>() ?? new MetricsOptions();
        if (options.Enabled)
            builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
                .AddMeter(SchedulerMetrics.MeterName)
                .AddPrometheusExporter());
        return builder;
    }

    /// <summary>Maps the scrape endpoint, for admins only unless <see cref="MetricsOptions.AllowAnonymous"/>.</summary>
    public static WebApplication MapPromptFacesMetrics(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<MetricsOptions>>().Value;
        if (!options.Enabled) return app;
        var endpoint = app.MapPrometheusScrapingEndpoint(options.Path);
        if (options.AllowAnonymous) endpoint.AllowAnonymous();
        else endpoint.RequireAuthorization(p => p.RequireRole(Roles.Admin));
        return app;
    }

    /// <summary>Whether a request is for the scrape endpoint (which answers bare status codes, never pages).</summary>
    public static bool IsMetricsRequest(HttpContext context) =>
        context.RequestServices.GetRequiredService<IOptions<MetricsOptions>>().Value is { Enabled: true } options
        && context.Request.Path.StartsWithSegments(options.Path);
}
