using Microsoft.Extensions.Options;
using PromptFaces.Generation.Models;
using Xunit;

namespace PromptFaces.Engine.Tests;

/// <summary>Which generator and CLIP folders the engine options resolve to.</summary>
public sealed class ModelPathsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-model-paths-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A models folder with a generator file and the given CLIP folders (only their existence matters here).</summary>
    private string ModelsFolder(params string[] clipFolders)
    {
        var folder = Path.Combine(_dir, "models");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, ModelLocator.GeneratorFile), "");
        foreach (var c in clipFolders) Directory.CreateDirectory(Path.Combine(folder, c));
        return folder;
    }

    private ModelPaths Paths(EngineOptions options) => new(Options.Create(options), new TestHostEnvironment(_dir));

    [Fact]
    public void A_models_folder_with_a_second_clip_guides_with_both_the_primary_first()
    {
        var folder = ModelsFolder("clip", "clip-second");
        var paths = Paths(new EngineOptions { ModelsFolder = folder });
        Assert.Null(paths.Problem);
        Assert.Equal(new[] { Path.Combine(folder, "clip"), Path.Combine(folder, "clip-second") }, paths.Clips);
        Assert.Equal(Path.Combine(folder, "clip"), paths.Clip);
    }

    [Fact]
    public void A_models_folder_without_a_second_clip_guides_with_its_clip_alone()
    {
        var folder = ModelsFolder("clip");
        Assert.Equal(new[] { Path.Combine(folder, "clip") }, Paths(new EngineOptions { ModelsFolder = folder }).Clips);
    }

    [Fact]
    public void A_configured_clip_guides_alone_even_when_the_models_folder_has_a_second()
    {
        var folder = ModelsFolder("clip", "clip-second");
        var own = Directory.CreateDirectory(Path.Combine(_dir, "vit-b-32")).FullName;
        var paths = Paths(new EngineOptions { ModelsFolder = folder, Clip = own });
        Assert.Null(paths.Problem);
        Assert.Equal(new[] { own }, paths.Clips);
        Assert.Equal(Path.Combine(folder, ModelLocator.GeneratorFile), paths.Generator);
    }

    [Fact]
    public void A_configured_second_clip_joins_the_first()
    {
        var folder = ModelsFolder("clip", "clip-second");
        var other = Directory.CreateDirectory(Path.Combine(_dir, "other")).FullName;
        Assert.Equal(new[] { Path.Combine(folder, "clip"), other }, Paths(new EngineOptions { ModelsFolder = folder, SecondClip = other }).Clips);
        var own = Directory.CreateDirectory(Path.Combine(_dir, "own")).FullName;
        Assert.Equal(new[] { own, other }, Paths(new EngineOptions { ModelsFolder = folder, Clip = own, SecondClip = "other" }).Clips);
    }

    [Fact]
    public void A_missing_second_clip_is_a_problem_that_names_the_setting()
    {
        var folder = ModelsFolder("clip");
        var paths = Paths(new EngineOptions { ModelsFolder = folder, SecondClip = "nowhere" });
        Assert.Empty(paths.Clips);
        Assert.Null(paths.Clip);
        Assert.Contains(Path.Combine(_dir, "nowhere"), paths.Problem);
        Assert.Contains("PromptFaces:Engine:SecondClip", paths.Problem);
    }
}
