namespace PromptFaces.Web.Hosting;

/// <summary>The Prometheus scrape endpoint, bound from <c>PromptFaces:Metrics</c>.</summary>
public sealed class MetricsOptions
{
    public const string Section = "PromptFaces:Metrics";

    /// <summary>Whether the scheduler's metrics are exported at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Where Prometheus scrapes.</summary>
    public string Path { get; set; } = "/metrics";

    /// <summary>False (the default): only signed-in admins may scrape (a scraper then needs an admin's cookie); true:
    /// anyone who can reach the app may, so put it behind a network boundary.</summary>
    public bool AllowAnonymous { get; set; }
}
