using Xunit;

// Each test class hosts its own app; running them one at a time keeps the 2-core machines responsive and the
// hosts from competing for the CPU that their background runners use.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
