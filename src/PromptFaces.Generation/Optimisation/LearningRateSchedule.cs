namespace PromptFaces.Generation.Optimisation;

/// <summary>
/// The learning-rate schedule of NVIDIA's projector: a linear warm-up over the first fraction of the steps, the full
/// rate in the middle, and a cosine ramp-down to zero over the last fraction.
/// </summary>
public static class LearningRateSchedule
{
    public static double At(int step, int totalSteps, double peak, double warmupFraction, double rampDownFraction)
    {
        double t = totalSteps <= 1 ? 0 : (double)step / totalSteps;
        double ramp = rampDownFraction > 0 ? Math.Min(1.0, (1.0 - t) / rampDownFraction) : 1.0;
        ramp = 0.5 - 0.5 * Math.Cos(ramp * Math.PI);
        if (warmupFraction > 0) ramp *= Math.Min(1.0, (t + 1.0 / Math.Max(1, totalSteps)) / warmupFraction);
        return peak * ramp;
    }
}
