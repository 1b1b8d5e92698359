using Xunit;

namespace PromptFaces.Engine.Tests;

public sealed class EngineOptionsTests
{
    [Fact]
    public void ForDevice_changes_the_device_and_keeps_every_other_option()
    {
        var configured = new EngineOptions();
        var properties = typeof(EngineOptions).GetProperties().Where(p => p.CanWrite).ToList();
        // Give every option a value unlike its default, so a field the copy forgot would show.
        foreach (var p in properties)
        {
            object value = p.PropertyType switch
            {
                var t when t == typeof(string) => "value-of-" + p.Name,
                var t when t == typeof(int) => 7 + p.Name.Length,
                var t when t == typeof(double) => -0.25 - p.Name.Length,
                var t when t == typeof(bool) => !(bool)p.GetValue(configured)!,
                var t => throw new InvalidOperationException($"EngineOptions.{p.Name} has type {t.Name}: extend this test (and check ForDevice copies it deeply enough)."),
            };
            p.SetValue(configured, value);
        }

        var copy = configured.ForDevice("cuda:1");

        Assert.NotSame(configured, copy);
        Assert.Equal("cuda:1", copy.Device);
        Assert.Equal("value-of-Device", configured.Device);
        foreach (var p in properties.Where(p => p.Name != nameof(EngineOptions.Device)))
            Assert.True(Equals(p.GetValue(configured), p.GetValue(copy)), $"ForDevice lost EngineOptions.{p.Name}");
    }
}
