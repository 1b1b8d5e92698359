using Bunit;
using MudBlazor.Services;
using PromptFaces.Web.Components.Admin;
using PromptFaces.Web.Services;
using Xunit;

namespace PromptFaces.Web.Tests;

/// <summary>The admin queue component: what each row shows, and the cancel and boost buttons' callbacks.</summary>
public sealed class AdminQueueTablesTests : BunitContext
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
    private static readonly Guid Waiting1 = Guid.NewGuid(), Waiting2 = Guid.NewGuid(), Running = Guid.NewGuid();

    public AdminQueueTablesTests()
    {
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
    }

    private static AdminQueueView View() => new(Now,
        [
            new QueuedJobRow(1, Waiting1, "u2", "light@example.com", "Designers", "a light user's face", 30, 0, 0, 1, 1000, 0, Now),
            new QueuedJobRow(2, Waiting2, "u1", "heavy@example.com", "(no team)", "a heavy user's face", 30, 10, 4.5, 0.25, 262.5, 12, Now.AddMinutes(-1)),
        ],
        [new RunningJobRow(Running, "u1", "heavy@example.com", "(no team)", "node/cuda:0", "cuda:0", "a running face", 7, 50, 3.25, 0.25, 250, 0)],
        [
            new UserUsageRow("u1", "heavy@example.com", "(no team)", 1, 120.5, 130, 1, 0.25, 0.25, 1, 1, false),
            new UserUsageRow("u2", "light@example.com", "Designers", 2, 0, 0, 1, 1, 1, 1, 0, true),
        ],
        [new TeamUsageRow("", "(no team)", 1, 120.5, 0.5), new TeamUsageRow("7", "Designers", 3, 0, null)],
        [new WorkerRow("node/cuda:0", "cuda:0", 8, 1, 100, 640, 0.755, 12.5, TimeSpan.FromMinutes(1))]);

    [Fact]
    public void Rows_show_owner_team_steps_usage_factor_and_priority()
    {
        var cut = Render<QueueTables>(p => p.Add(c => c.View, View()));

        var waiting = cut.FindAll("[data-testid=queue-waiting-job]");
        Assert.Equal([Waiting1.ToString(), Waiting2.ToString()], waiting.Select(r => r.GetAttribute("data-job-id")));
        var second = waiting[1];
        Assert.Equal("2", second.QuerySelector("[data-testid=job-rank]")!.TextContent);
        Assert.Equal("heavy@example.com", second.QuerySelector("[data-testid=job-owner]")!.TextContent);
        Assert.Equal("10 / 30", second.QuerySelector("[data-testid=job-steps]")!.TextContent);
        Assert.Equal("0.250", second.QuerySelector("[data-testid=job-factor]")!.TextContent);
        Assert.Equal("262.5", second.QuerySelector("[data-testid=job-priority]")!.TextContent);

        var running = cut.Find("[data-testid=queue-running-job]");
        Assert.Contains("cuda:0", running.TextContent);
        Assert.Equal("7 / 50", running.QuerySelector("[data-testid=job-steps]")!.TextContent);

        var worker = cut.Find("[data-testid=worker]");
        Assert.Equal("76 %", worker.QuerySelector("[data-testid=worker-busy]")!.TextContent);
        Assert.Equal("12.50", worker.QuerySelector("[data-testid=worker-throughput]")!.TextContent);
        Assert.Contains("last 1 min", cut.Find("[data-testid=workers]").TextContent);

        var users = cut.FindAll("[data-testid=queue-user]");
        Assert.Equal("120.5", users[0].QuerySelector("[data-testid=user-usage]")!.TextContent);
        Assert.Equal("light@example.com (disabled)", users[1].QuerySelector("[data-testid=user-email]")!.TextContent);
        var teams = cut.FindAll("[data-testid=queue-team]");
        Assert.Equal("0.500", teams[0].QuerySelector("[data-testid=team-factor]")!.TextContent);
        Assert.Equal("–", teams[1].QuerySelector("[data-testid=team-factor]")!.TextContent);
    }

    [Fact]
    public void Cancel_and_boost_buttons_report_the_job()
    {
        var cancelled = new List<Guid>();
        var boosts = new List<BoostChange>();
        var cut = Render<QueueTables>(p => p
            .Add(c => c.View, View())
            .Add(c => c.OnCancel, (Guid id) => cancelled.Add(id))
            .Add(c => c.OnBoost, (BoostChange change) => boosts.Add(change)));

        cut.Find("[data-testid=queue-running-job] [data-testid=admin-job-cancel]").Click();
        cut.FindAll("[data-testid=queue-waiting-job]")[1].QuerySelector("[data-testid=admin-job-cancel]")!.Click();
        cut.Find($"#boost-{Waiting1}").Change("250");
        cut.FindAll("[data-testid=queue-waiting-job]")[0].QuerySelector("[data-testid=admin-job-boost-set]")!.Click();

        Assert.Equal([Running, Waiting2], cancelled);
        Assert.Equal([new BoostChange(Waiting1, 250)], boosts);
    }

    [Fact]
    public void An_empty_queue_says_so()
    {
        var cut = Render<QueueTables>(p => p.Add(c => c.View, new AdminQueueView(Now, [], [], [], [], [])));
        Assert.Single(cut.FindAll("[data-testid=queue-waiting-empty]"));
        Assert.Single(cut.FindAll("[data-testid=queue-running-empty]"));
    }
}
