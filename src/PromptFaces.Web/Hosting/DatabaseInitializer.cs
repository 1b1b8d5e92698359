using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Data.Entities;

namespace PromptFaces.Web.Hosting;

/// <summary>
/// Brings the database up to date before the app serves anything: applies the migrations, turns on SQLite's
/// write-ahead log (pages read while the runner writes), and makes sure the roles exist. Runs as the first hosted
/// service, so the job runner, registered after it, starts on a migrated database.
/// </summary>
public sealed class DatabaseInitializer(IServiceProvider services, ILogger<DatabaseInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PromptFacesDbContext>();
        await db.Database.MigrateAsync(cancellationToken);
        if (db.Database.IsSqlite())
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
        var roles = scope.ServiceProvider.GetRequiredService<RoleManager<IdentityRole>>();
        foreach (var role in Roles.All)
        {
            if (!await roles.RoleExistsAsync(role))
                await roles.CreateAsync(new IdentityRole(role));
        }
        logger.LogInformation("Database ready: {DataSource}", db.Database.GetDbConnection().DataSource);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
