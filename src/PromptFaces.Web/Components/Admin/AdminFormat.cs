using System.Globalization;

namespace PromptFaces.Web.Components.Admin;

/// <summary>Number formats of the admin pages (invariant culture, so tests and screenshots read the same anywhere).</summary>
public static class AdminFormat
{
    public static string Factor(double value) => value.ToString("0.000", CultureInfo.InvariantCulture);

    public static string Factor(double? value) => value is { } v ? Factor(v) : "–";

    public static string Number(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    public static string Seconds(double value) => value.ToString("0.0", CultureInfo.InvariantCulture);

    public static string Percent(double fraction) => (fraction * 100).ToString("0", CultureInfo.InvariantCulture) + " %";

    public static string PerSecond(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);

    public static string Limit(int? value) => value is { } v ? v.ToString(CultureInfo.InvariantCulture) : "∞";

    public static string Limit(double? value) => value is { } v ? Number(v) : "∞";

    public static string Short(string text, int length = 60) => text.Length <= length ? text : text[..(length - 1)] + "…";
}
