using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>The progress hub with the SignalR .NET client over MessagePack: frames reach their owner and nobody else.</summary>
public sealed class ProgressHubTests(AppFactory app) : IClassFixture<AppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed record Frame(string JobId, int Step, int TotalSteps, double Similarity, byte[] Jpeg, DateTimeOffset ProducedAt, DateTimeOffset ReceivedAt);

    private HubConnection Connect(UserClient user, ConcurrentQueue<Frame> frames)
    {
        var connection = new HubConnectionBuilder()
            .WithUrl(new Uri(app.Server.BaseAddress, "/hubs/progress"), options =>
            {
                options.Transports = HttpTransportType.LongPolling;
                options.HttpMessageHandlerFactory = _ => app.Server.CreateHandler();
                if (user.CookieHeader.Length > 0) options.Headers["Cookie"] = user.CookieHeader;
            })
            .AddMessagePackProtocol()
            .Build();
        connection.On<string, int, int, double, byte[], double>("frame", (jobId, step, total, similarity, jpeg, producedAtMs) =>
            frames.Enqueue(new Frame(jobId, step, total, similarity, jpeg, DateTimeOffset.FromUnixTimeMilliseconds((long)producedAtMs), DateTimeOffset.UtcNow)));
        return connection;
    }

    [Fact]
    public async Task The_owner_receives_frames_of_their_job_and_another_user_receives_none()
    {
        app.Engine.StepDelay = TimeSpan.FromMilliseconds(5);
        using var owner = await app.RegisterAsync("hub-owner@example.com");
        using var other = await app.RegisterAsync("hub-other@example.com");
        var jobId = await owner.SubmitOkAsync(new { prompt = "a face streamed live", steps = 1000 });
        await owner.WaitForStatusAsync(jobId, "Running");

        var ownerFrames = new ConcurrentQueue<Frame>();
        var otherFrames = new ConcurrentQueue<Frame>();
        await using var ownerHub = Connect(owner, ownerFrames);
        await using var otherHub = Connect(other, otherFrames);
        await ownerHub.StartAsync(Ct);
        await otherHub.StartAsync(Ct);

        var snapshot = await ownerHub.InvokeAsync<Dictionary<object, object?>?>("Subscribe", jobId.ToString(), Ct);
        Assert.NotNull(snapshot);
        await TestHelpers.WaitUntilAsync(() => ownerFrames.Count >= 3, "the owner's first frames");

        // The other user asks for the owner's job: refused, and then frames keep flowing to the owner only.
        var refused = await otherHub.InvokeAsync<Dictionary<object, object?>?>("Subscribe", jobId.ToString(), Ct);
        Assert.Null(refused);
        int seen = ownerFrames.Count;
        await TestHelpers.WaitUntilAsync(() => ownerFrames.Count >= seen + 5, "more frames for the owner");

        Assert.Empty(otherFrames);
        Assert.All(ownerFrames, f =>
        {
            Assert.Equal(jobId.ToString(), f.JobId);
            Assert.Equal(1000, f.TotalSteps);
            Assert.Equal(new byte[] { 0xFF, 0xD8 }, f.Jpeg[..2]); // JPEG start-of-image
            // Stamped when the step was handed over, on this process's clock: never in the future, and recent.
            Assert.InRange(f.ProducedAt, f.ReceivedAt - TestHelpers.Patience, f.ReceivedAt.AddMilliseconds(1));
        });
        var steps = ownerFrames.Select(f => f.Step).ToArray();
        Assert.Equal(steps.OrderBy(s => s), steps); // newest-frame delivery may skip steps, never reorders them

        using var cancel = await owner.Http.PostAsync($"/api/jobs/{jobId}/cancel", null, Ct);
        await owner.WaitForStatusAsync(jobId, "Cancelled");
    }

    [Fact]
    public async Task An_anonymous_client_cannot_connect()
    {
        await using var anonymous = Connect(app.NewClient(), new ConcurrentQueue<Frame>());
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => anonymous.StartAsync(Ct));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, error.StatusCode);
    }
}
