using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace PromptFaces.Data;

/// <summary>Lets <c>dotnet ef migrations add NAME --project src/PromptFaces.Data</c> build the model without the web
/// host. The database it names is never opened by that command.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<PromptFacesDbContext>
{
    public PromptFacesDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PromptFacesDbContext>().UseSqlite("Data Source=design-time.db").Options);
}
