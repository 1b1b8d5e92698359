using PromptFaces.Generation.Optimisation;
using PromptFaces.Web.Jobs;
using Xunit;

namespace PromptFaces.Web.Tests;

public sealed class JobRequestDefaultsTests
{
    /// <summary>
    /// The web form starts from the same optimisation as the CLI and the judged evaluation: the web project does not
    /// reference the generation library, so its defaults are written out and this keeps them in step.
    /// </summary>
    [Fact]
    public void The_forms_defaults_are_the_engines_default_optimisation()
    {
        var form = new JobRequest();
        var engine = new OptimisationSettings();
        Assert.Equal(engine.Steps, form.Steps);
        Assert.Equal(engine.TruncationPsi, form.TruncationPsi);
        Assert.Equal(engine.LearningRate, form.LearningRate);
        Assert.Equal(engine.Cutouts, form.Cutouts);
        Assert.Equal(engine.Starts, form.Starts);
    }
}
