using Xunit;

// The test runs the real app, which uses both cores for the models; one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
