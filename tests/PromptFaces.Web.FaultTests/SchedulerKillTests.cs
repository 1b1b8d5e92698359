using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Data.Entities;
using PromptFaces.Scheduling;
using Xunit;

namespace PromptFaces.Web.FaultTests;

/// <summary>
/// The real fault test of the scheduler's recovery: the real app (its build output, a real SQLite file, the shipped
/// default models on the CPU) is killed with SIGKILL while a job runs past its first checkpoint and a second job
/// waits, then started again on the same data folder.
/// </summary>
public sealed class SchedulerKillTests : IDisposable
{
    private const int CheckpointEvery = 5;
    private const int LongSteps = 60;
    private const int ShortSteps = 15;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(5);

    private readonly string _data = Directory.CreateTempSubdirectory("pf-fault-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_data, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>One job at a time (B = 1, so the second job waits), a checkpoint every 5 steps, progress written often,
    /// no warm-up (the test waits for the first job anyway).</summary>
    private Dictionary<string, string> Settings() => new()
    {
        ["PromptFaces__DataFolder"] = _data,
        ["PromptFaces__Engine__ModelsFolder"] = Path.Combine(AppProcess.RepositoryRoot, "models"),
        ["PromptFaces__Engine__Device"] = "cpu",
        ["PromptFaces__Engine__WarmUp"] = "false",
        ["PromptFaces__Scheduler__DefaultMaxBatch"] = "1",
        ["PromptFaces__Scheduler__CheckpointEvery"] = CheckpointEvery.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["PromptFaces__Scheduler__ProgressWriteInterval"] = "00:00:00.100",
        ["PromptFaces__Scheduler__PollInterval"] = "00:00:00.200",
        ["PromptFaces__Scheduler__NodeName"] = "fault-test",
    };

    [Fact]
    public async Task Scheduler_job_killed_with_sigkill_resumes_from_its_checkpoint_after_restart_and_the_queued_job_keeps_its_place()
    {
        var cookies = new CookieContainer();
        Guid running, waiting;
        int checkpointStep;

        using (var first = await AppProcess.StartAsync(Settings(), StartTimeout))
        {
            using var http = Client(first, cookies);
            await RegisterAsync(http, "fault@example.com");
            running = await SubmitAsync(http, "Draw a person who has pink hair.", LongSteps, seed: 11);
            waiting = await SubmitAsync(http, "Give me a face with green eyes.", ShortSteps, seed: 12);

            // Kill as soon as the database holds a checkpoint of the running job, mid-run.
            var stored = await PollAsync(() => ReadJob(running), j => j.Status == JobStatus.Running && j.ResumeState is not null,
                JobTimeout, () => first.Output);
            Assert.True(stored.CheckpointStep < LongSteps, $"the job was at step {stored.CheckpointStep} of {LongSteps} when killed");
            first.KillHard();
            Assert.True(first.HasExited);
        }

        // What the killed process left behind: the job still marked running with its checkpoint, the other queued,
        // no image yet.
        var killed = ReadJob(running);
        Assert.Equal(JobStatus.Running, killed.Status);
        Assert.NotNull(killed.ResumeState);
        checkpointStep = killed.CheckpointStep;
        Assert.True(checkpointStep >= CheckpointEvery && checkpointStep % CheckpointEvery == 0, $"checkpoint at step {checkpointStep}");
        Assert.Equal(JobStatus.Queued, ReadJob(waiting).Status);
        Assert.Empty(ReadImages());

        using var second = await AppProcess.StartAsync(Settings(), StartTimeout);
        using var again = Client(second, cookies); // the same session cookie: the data-protection keys live in the data folder

        // Watch the resumed job: it never goes back below its checkpoint, and it completes.
        var seen = new List<(string Status, int StepsDone)>();
        var done = await PollAsync(async () =>
        {
            var view = await GetJobAsync(again, running);
            seen.Add((view.Status, view.StepsDone));
            return view;
        }, v => IsFinal(v.Status), JobTimeout, () => second.Output, interval: TimeSpan.FromMilliseconds(50));
        Assert.True(done.Status == "Completed", $"the resumed job ended {done.Status}: {done.Error}\n{second.Output}");
        Assert.NotNull(done.ImageId);
        Assert.Equal(LongSteps, done.StepsDone);
        Assert.True(seen.All(s => s.StepsDone >= checkpointStep),
            $"the job's steps went back below its checkpoint at {checkpointStep}: {string.Join(", ", seen.Select(s => $"{s.Status} {s.StepsDone}"))}");
        Assert.Contains("interrupted job(s) back in the queue", second.Output);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"killed with a checkpoint at step {checkpointStep}; after the restart the job read: {string.Join(", ", seen.Select(s => $"{s.Status} {s.StepsDone}").Distinct())}");

        // The job that was waiting runs after it, and completes too.
        var next = await PollAsync(() => GetJobAsync(again, waiting), v => IsFinal(v.Status), JobTimeout, () => second.Output);
        Assert.True(next.Status == "Completed", $"the queued job ended {next.Status}: {next.Error}");
        Assert.NotNull(next.ImageId);
        Assert.Equal(ShortSteps, next.StepsDone);

        // Exactly one image row and one PNG per job; the queued job started only after the first one finished.
        var images = ReadImages();
        Assert.Single(images, i => i.JobId == running);
        Assert.Single(images, i => i.JobId == waiting);
        Assert.Equal(2, images.Count);
        var pngs = Directory.GetFiles(Path.Combine(_data, "images"), "*.png", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Path.Combine(_data, "images"), f)).Order().ToList();
        Assert.Equal(images.Select(i => i.FilePath).Order().ToList(), pngs);
        var first2 = ReadJob(running);
        var second2 = ReadJob(waiting);
        Assert.Null(first2.ResumeState);
        Assert.True(second2.StartedAt >= first2.FinishedAt, $"the queued job started at {second2.StartedAt:O}, before the resumed job finished at {first2.FinishedAt:O}");
    }

    private static bool IsFinal(string status) => status is "Completed" or "Failed" or "Cancelled";

    private static HttpClient Client(AppProcess app, CookieContainer cookies) =>
        new(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false })
        {
            BaseAddress = app.BaseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };

    private static async Task RegisterAsync(HttpClient http, string email)
    {
        var form = await http.GetStringAsync("/account/register");
        var token = Regex.Match(form, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(token), "the register page has no antiforgery token");
        using var response = await http.PostAsync("/account/register", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = token,
            ["_handler"] = "register",
            ["Input.Email"] = email,
            ["Input.Password"] = "Password1",
            ["Input.ConfirmPassword"] = "Password1",
        }));
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"registering answered {(int)response.StatusCode}");
    }

    private sealed record Submitted(Guid Id);

    private sealed record JobView(Guid Id, string Status, int StepsDone, string? Error, Guid? ImageId);

    private static async Task<Guid> SubmitAsync(HttpClient http, string prompt, int steps, long seed)
    {
        using var response = await http.PostAsJsonAsync("/api/jobs", new
        {
            prompt,
            steps,
            seed,
            truncationPsi = 0.7,
            learningRate = 0.05,
            cutouts = 8,
            starts = 1,
        });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"submitting answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<Submitted>())!.Id;
    }

    private static async Task<JobView> GetJobAsync(HttpClient http, Guid id) =>
        (await http.GetFromJsonAsync<JobView>($"/api/jobs/{id}"))!;

    private static async Task<T> PollAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, Func<string> log, TimeSpan? interval = null)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (watch.Elapsed > timeout) throw new TimeoutException($"Gave up waiting after {timeout.TotalSeconds:F0} s; last seen {value}.\n{log()}");
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(100));
        }
    }

    private Task<T> PollAsync<T>(Func<T> read, Func<T, bool> done, TimeSpan timeout, Func<string> log) =>
        PollAsync(() => Task.FromResult(read()), done, timeout, log);

    private PromptFacesDbContext Open() => new(new DbContextOptionsBuilder<PromptFacesDbContext>()
        .UseSqlite($"Data Source={Path.Combine(_data, "promptfaces.db")};Pooling=False").Options);

    private Job ReadJob(Guid id)
    {
        using var db = Open();
        return db.Jobs.AsNoTracking().Single(j => j.Id == id);
    }

    private List<GeneratedImage> ReadImages()
    {
        using var db = Open();
        return db.Images.AsNoTracking().ToList();
    }
}
