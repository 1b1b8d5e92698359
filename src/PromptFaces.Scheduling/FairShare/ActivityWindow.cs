namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// A worker's recent activity: the engine steps that ended within the last <c>window</c>, each with its wall time and
/// the job-steps it advanced. From these come the device's busy fraction and its step throughput over the window.
/// Thread-safe: the worker's loop records, the admin pages and the metrics read.
/// </summary>
public sealed class ActivityWindow
{
    private readonly Lock _gate = new();
    private readonly Queue<Entry> _entries = new();
    private readonly TimeSpan _window;
    private readonly DateTimeOffset _since;
    private double _busySeconds;
    private long _jobSteps;

    /// <param name="window">How far back the averages look.</param>
    /// <param name="since">When the worker started; while it is younger than the window, averages are over its age.</param>
    public ActivityWindow(TimeSpan window, DateTimeOffset since)
    {
        if (window <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(window), "The window must be positive.");
        _window = window;
        _since = since;
    }

    public TimeSpan Window => _window;

    /// <summary>An engine step that ended at <paramref name="endedAt"/>, took <paramref name="busy"/> and advanced
    /// <paramref name="jobSteps"/> jobs by one step each.</summary>
    public void Record(DateTimeOffset endedAt, TimeSpan busy, int jobSteps)
    {
        lock (_gate)
        {
            var entry = new Entry(endedAt, Math.Max(0, busy.TotalSeconds), Math.Max(0, jobSteps));
            _entries.Enqueue(entry);
            _busySeconds += entry.BusySeconds;
            _jobSteps += entry.JobSteps;
            Prune(endedAt);
        }
    }

    /// <summary>The busy fraction (0 to 1) and the job-steps per second over the window ending at <paramref name="now"/>.</summary>
    public ActivityRates Read(DateTimeOffset now)
    {
        lock (_gate)
        {
            Prune(now);
            var span = now - _since;
            if (span > _window) span = _window;
            double seconds = span.TotalSeconds;
            if (seconds <= 0) return new ActivityRates(0, 0);
            return new ActivityRates(Math.Clamp(_busySeconds / seconds, 0, 1), _jobSteps / seconds);
        }
    }

    private void Prune(DateTimeOffset now)
    {
        var oldest = now - _window;
        while (_entries.TryPeek(out var first) && first.EndedAt <= oldest)
        {
            _entries.Dequeue();
            _busySeconds -= first.BusySeconds;
            _jobSteps -= first.JobSteps;
        }
        if (_entries.Count == 0) _busySeconds = 0; // no drift from subtracting doubles
    }

    private readonly record struct Entry(DateTimeOffset EndedAt, double BusySeconds, int JobSteps);
}

/// <summary>A device's busy fraction (0 to 1) and step throughput (job-steps per second) over a recent window.</summary>
public readonly record struct ActivityRates(double BusyFraction, double JobStepsPerSecond);
