using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using PromptFaces.Data;
using PromptFaces.Scheduling;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>A job from submission to stored image, through the real runner, job store and file store.</summary>
public sealed class JobRunTests(AppFactory app) : IClassFixture<AppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_submitted_job_runs_to_completion_and_its_image_files_and_rows_exist()
    {
        using var user = await app.RegisterAsync("runner@example.com");
        var jobId = await user.SubmitOkAsync(new { prompt = "a man with a red beard", negativePrompt = "glasses", steps = 5, seed = 42 });

        var job = await user.WaitForStatusAsync(jobId, "Completed");
        Assert.Equal(5, job.GetProperty("stepsDone").GetInt32());
        Assert.Equal(42, job.GetProperty("seed").GetInt64());
        var imageId = job.GetProperty("imageId").GetGuid();

        using (var scope = app.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PromptFacesDbContext>();
            var row = await db.Jobs.Include(j => j.Image).SingleAsync(j => j.Id == jobId, Ct);
            Assert.Equal(JobStatus.Completed, row.Status);
            Assert.NotNull(row.StartedAt);
            Assert.NotNull(row.FinishedAt);
            Assert.True(row.FinishedAt >= row.StartedAt);
            Assert.Equal("glasses", row.NegativePrompt);
            Assert.NotNull(row.Similarity);
            var image = Assert.IsType<PromptFaces.Data.Entities.GeneratedImage>(row.Image);
            Assert.Equal(imageId, image.Id);
            Assert.Equal(row.OwnerId, image.OwnerId);
            Assert.Equal((16, 16), (image.Width, image.Height));
            foreach (var path in new[] { image.FilePath, image.ThumbnailPath, image.AnimationPath! })
            {
                Assert.False(Path.IsPathRooted(path), $"{path} should be stored relative to the data folder");
                Assert.True(File.Exists(Path.Combine(app.DataFolder, "images", path)), $"{path} is missing");
            }
        }

        var png = await user.Http.GetByteArrayAsync($"/api/images/{imageId}", Ct);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        using var download = await user.Http.GetAsync($"/api/images/{imageId}/download", Ct);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition?.DispositionType);
        var gif = await user.Http.GetByteArrayAsync($"/api/images/{imageId}/animation", Ct);
        Assert.Equal("GIF8"u8.ToArray(), gif[..4]);
    }

    [Fact]
    public async Task A_running_job_can_be_cancelled()
    {
        using var user = await app.RegisterAsync("canceller@example.com");
        app.Engine.Hold = true;
        try
        {
            var jobId = await user.SubmitOkAsync(new { prompt = "a woman with short grey hair", steps = 50 });
            await user.WaitForStatusAsync(jobId, "Running");
            using var cancel = await user.Http.PostAsync($"/api/jobs/{jobId}/cancel", null, Ct);
            Assert.Equal(HttpStatusCode.NoContent, cancel.StatusCode);
            var job = await user.WaitForStatusAsync(jobId, "Cancelled");
            Assert.Equal(JsonValueKindNull, job.GetProperty("imageId").ValueKind);
        }
        finally
        {
            app.Engine.Hold = false;
        }
    }

    private const System.Text.Json.JsonValueKind JsonValueKindNull = System.Text.Json.JsonValueKind.Null;
}
