using Bunit;
using MudBlazor.Services;
using PromptFaces.Data.Entities;
using PromptFaces.Scheduling.FairShare;
using PromptFaces.Web.Components.Admin;
using Xunit;

namespace PromptFaces.Web.Tests;

/// <summary>The quota editor of the admin scheduling page: what is typed lands in the settings; empty inherits.</summary>
public sealed class QuotaFieldsTests : BunitContext
{
    public QuotaFieldsTests()
    {
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
    }

    [Fact]
    public void Typed_limits_are_set_and_cleared_fields_inherit()
    {
        var quotas = new QuotaSettings { MaxRunning = 3 };
        var cut = Render<QuotaFields>(p => p
            .Add(c => c.Quotas, quotas)
            .Add(c => c.Prefix, "u1")
            .Add(c => c.Effective, new QuotaLimits { MaxQueued = 5, MaxRunning = 3 }));

        cut.Find("#u1-max-queued").Change("7");
        cut.Find("#u1-max-steps").Change("200");
        cut.Find("#u1-device-seconds").Change("3600.5");
        cut.Find("#u1-max-running").Change("");

        Assert.Equal(7, quotas.MaxQueued);
        Assert.Null(quotas.MaxRunning);
        Assert.Equal(200, quotas.MaxStepsPerJob);
        Assert.Equal(3600.5, quotas.DeviceSecondsPerDay);
    }

    [Fact]
    public void Empty_fields_show_what_applies_instead()
    {
        var cut = Render<QuotaFields>(p => p
            .Add(c => c.Quotas, new QuotaSettings())
            .Add(c => c.Prefix, "u2")
            .Add(c => c.Effective, new QuotaLimits { MaxQueued = 5 }));

        Assert.Equal("5", cut.Find("#u2-max-queued").GetAttribute("placeholder"));
        Assert.Equal("∞", cut.Find("#u2-max-running").GetAttribute("placeholder"));
    }
}
