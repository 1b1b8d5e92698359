// Each test starts real processes that use both cores; running them one at a time keeps the machine responsive.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
