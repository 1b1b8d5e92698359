using System.Diagnostics.Metrics;

namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// The scheduler's metrics on the BCL's <see cref="Meter"/> API (meter <see cref="MeterName"/>), so that any
/// listener can collect them; the web app exports them with OpenTelemetry. Nothing here knows of an exporter.
/// </summary>
/// <remarks>
/// Instruments (units in brackets):
/// <list type="bullet">
/// <item><c>promptfaces.scheduler.queue.length</c> [{job}], observable gauge: jobs waiting, as the scheduler last
/// read the queue (at most about a second old while a worker runs).</item>
/// <item><c>promptfaces.scheduler.jobs.running</c> [{job}], observable gauge per <c>worker</c>.</item>
/// <item><c>promptfaces.scheduler.device.busy</c> [1], observable gauge per <c>worker</c>: the fraction of the
/// recent window (<see cref="SchedulerOptions.ActivityWindow"/>) the device spent in engine steps.</item>
/// <item><c>promptfaces.scheduler.job.wait</c> [s], histogram: from a job being queued to its first start.</item>
/// <item><c>promptfaces.scheduler.job.run</c> [s], histogram per <c>status</c>: from a worker admitting a job to its
/// end (for a job resumed after a requeue, from the resumption).</item>
/// <item><c>promptfaces.scheduler.job_steps</c> [{step}], counter per <c>worker</c>: optimisation steps taken by
/// jobs (a batch of B jobs stepping once counts B); its rate is the step throughput.</item>
/// <item><c>promptfaces.scheduler.usage</c> [s], counter per <c>user</c> (user id) and <c>team</c> (team key, empty
/// for no team): device-seconds charged, undecayed.</item>
/// </list>
/// </remarks>
public sealed class SchedulerMetrics : IDisposable
{
    public const string MeterName = "PromptFaces.Scheduler";

    private static readonly IReadOnlyList<double> SecondsBuckets =
        [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Histogram<double> _wait;
    private readonly Histogram<double> _run;
    private readonly Counter<long> _jobSteps;
    private readonly Counter<double> _usage;
    private int _observed;

    /// <param name="meterFactory">The host's meter factory; null: a meter of this instance's own.</param>
    public SchedulerMetrics(IMeterFactory? meterFactory = null)
    {
        if (meterFactory is null)
        {
            _meter = new Meter(MeterName);
            _ownsMeter = true;
        }
        else
        {
            _meter = meterFactory.Create(MeterName);
        }
        _wait = _meter.CreateHistogram("promptfaces.scheduler.job.wait", "s",
            "Time from a job being queued to its first start.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        _run = _meter.CreateHistogram("promptfaces.scheduler.job.run", "s",
            "Time from a worker admitting a job to the job's end.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        _jobSteps = _meter.CreateCounter<long>("promptfaces.scheduler.job_steps", "{step}",
            "Optimisation steps taken by jobs (one per job per batched engine step).");
        _usage = _meter.CreateCounter<double>("promptfaces.scheduler.usage", "s",
            "Device-seconds charged to users (undecayed).");
    }

    public Meter Meter => _meter;

    internal void JobStarted(TimeSpan waited) => _wait.Record(Math.Max(0, waited.TotalSeconds));

    internal void JobEnded(TimeSpan ran, JobStatus status) =>
        _run.Record(Math.Max(0, ran.TotalSeconds), new KeyValuePair<string, object?>("status", status.ToString()));

    internal void JobStepsTaken(string workerId, int count)
    {
        if (count > 0) _jobSteps.Add(count, new KeyValuePair<string, object?>("worker", workerId));
    }

    internal void Charged(string userId, string teamKey, double deviceSeconds)
    {
        if (deviceSeconds > 0)
            _usage.Add(deviceSeconds, new KeyValuePair<string, object?>("user", userId), new KeyValuePair<string, object?>("team", teamKey));
    }

    /// <summary>Creates the observable gauges over one scheduler's state (once per instance).</summary>
    internal void Observe(Func<int> queueLength, Func<IEnumerable<(string Worker, int Running, double Busy)>> workers)
    {
        if (Interlocked.Exchange(ref _observed, 1) == 1) return;
        _meter.CreateObservableGauge("promptfaces.scheduler.queue.length", queueLength, "{job}", "Jobs waiting in the queue.");
        _meter.CreateObservableGauge("promptfaces.scheduler.jobs.running",
            () => workers().Select(w => new Measurement<int>(w.Running, new KeyValuePair<string, object?>("worker", w.Worker))),
            "{job}", "Jobs running on each worker.");
        _meter.CreateObservableGauge("promptfaces.scheduler.device.busy",
            () => workers().Select(w => new Measurement<double>(w.Busy, new KeyValuePair<string, object?>("worker", w.Worker))),
            "1", "Fraction of the recent window each worker's device spent in engine steps.");
    }

    public void Dispose()
    {
        if (_ownsMeter) _meter.Dispose();
    }
}
