using System.Collections.Concurrent;
using PromptFaces.Scheduling;

namespace PromptFaces.Web.Progress;

/// <summary>A running job's live state as the last steps left it.</summary>
/// <param name="Similarities">one value per step so far (the curve), capped at <see cref="JobProgressFeed.MaxHistory"/>.</param>
public sealed record LiveJob(Guid JobId, string OwnerId, JobStatus Status, int Step, int TotalSteps, double? Similarity,
    IReadOnlyList<double> Similarities, StepEvent? LatestFrame);

/// <summary>
/// In-process progress for server-side components (step counter, similarity curve) and the state a re-subscribing
/// client starts from. The images themselves go to browsers through <see cref="ProgressHub"/>, not through here.
/// Subscribers are keyed by job, and components subscribe only to jobs they have checked the user owns.
/// </summary>
public sealed class JobProgressFeed
{
    public const int MaxHistory = 2000;

    private readonly ConcurrentDictionary<Guid, LiveState> _live = new();
    private readonly ConcurrentDictionary<Guid, ImmutableSubscribers> _subscribers = new();

    /// <summary>Raised for every step and state change of a job. Handlers must be quick and must not throw.</summary>
    public IDisposable Subscribe(Guid jobId, Action<LiveJob, JobStateChange?> handler)
    {
        _subscribers.AddOrUpdate(jobId, _ => new ImmutableSubscribers([handler]), (_, s) => new ImmutableSubscribers([.. s.Handlers, handler]));
        return new Unsubscriber(() =>
        {
            while (_subscribers.TryGetValue(jobId, out var s))
            {
                var remaining = s.Handlers.Where(h => h != handler).ToArray();
                bool done = remaining.Length == 0
                    ? _subscribers.TryRemove(new KeyValuePair<Guid, ImmutableSubscribers>(jobId, s))
                    : _subscribers.TryUpdate(jobId, new ImmutableSubscribers(remaining), s);
                if (done) break;
            }
        });
    }

    /// <summary>The live state of a running (or just started) job, or null when none is known.</summary>
    public LiveJob? Get(Guid jobId) => _live.TryGetValue(jobId, out var s) ? s.Snapshot() : null;

    public void PublishStep(string ownerId, StepEvent step)
    {
        var state = _live.GetOrAdd(step.JobId, id => new LiveState(id, ownerId));
        state.Record(step);
        Raise(step.JobId, state.Snapshot(), null);
    }

    public void PublishState(string ownerId, JobStateChange change)
    {
        var state = _live.GetOrAdd(change.JobId, id => new LiveState(id, ownerId));
        state.SetStatus(change.Status);
        var snapshot = state.Snapshot();
        // A job that ended or went back to the queue has no live state any more: the database has the rest.
        if (change.Status != JobStatus.Running) _live.TryRemove(change.JobId, out _);
        Raise(change.JobId, snapshot, change);
    }

    private void Raise(Guid jobId, LiveJob job, JobStateChange? change)
    {
        if (!_subscribers.TryGetValue(jobId, out var s)) return;
        foreach (var handler in s.Handlers) handler(job, change);
    }

    private sealed record ImmutableSubscribers(Action<LiveJob, JobStateChange?>[] Handlers);

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        private int _disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) dispose();
        }
    }

    private sealed class LiveState(Guid jobId, string ownerId)
    {
        private readonly List<double> _similarities = new();
        private JobStatus _status = JobStatus.Running;
        private StepEvent? _latest;

        public void Record(StepEvent step)
        {
            lock (_similarities)
            {
                _latest = step;
                if (_similarities.Count < MaxHistory) _similarities.Add(step.Similarity);
            }
        }

        public void SetStatus(JobStatus status)
        {
            lock (_similarities) _status = status;
        }

        public LiveJob Snapshot()
        {
            lock (_similarities)
                return new LiveJob(jobId, ownerId, _status, _latest?.Step ?? 0, _latest?.TotalSteps ?? 0, _latest?.Similarity,
                    _similarities.ToArray(), _latest);
        }
    }
}
