using PromptFaces.Scheduling.FairShare;
using Xunit;

namespace PromptFaces.Web.Tests;

/// <summary>The busy fraction and step throughput the admin queue page and the device gauge show.</summary>
public sealed class ActivityWindowTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Busy_fraction_and_throughput_cover_the_steps_within_the_window()
    {
        var window = new ActivityWindow(TimeSpan.FromSeconds(10), Start.AddMinutes(-5));
        // Three 2-second steps of a batch of 4 end at 2, 4 and 6 s: 6 busy seconds and 12 job-steps in the last 10 s.
        for (int i = 1; i <= 3; i++) window.Record(Start.AddSeconds(2 * i), TimeSpan.FromSeconds(2), 4);

        var rates = window.Read(Start.AddSeconds(10));
        Assert.Equal(0.6, rates.BusyFraction, 9);
        Assert.Equal(1.2, rates.JobStepsPerSecond, 9);

        // 13 s: the step that ended at 2 s has left the window.
        var later = window.Read(Start.AddSeconds(13));
        Assert.Equal(0.4, later.BusyFraction, 9);
        Assert.Equal(0.8, later.JobStepsPerSecond, 9);

        var idle = window.Read(Start.AddMinutes(1));
        Assert.Equal(new ActivityRates(0, 0), idle);
    }

    [Fact]
    public void A_worker_younger_than_the_window_is_measured_over_its_age()
    {
        var window = new ActivityWindow(TimeSpan.FromMinutes(1), Start);
        window.Record(Start.AddSeconds(4), TimeSpan.FromSeconds(4), 8);
        var rates = window.Read(Start.AddSeconds(5));
        Assert.Equal(0.8, rates.BusyFraction, 9);
        Assert.Equal(1.6, rates.JobStepsPerSecond, 9);
    }
}
