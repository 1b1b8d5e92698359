using Xunit;

// The test classes of this assembly run one at a time. The trainers draw their initial weights from libtorch's global
// random generator right after seeding it (a module's initialisers take no generator of their own), and several tests
// seed and draw from it too. Run side by side, a test's draw between another's seed and its weights gave that run
// other weights, and two runs that must match byte for byte (the momentum test) did not. The other test projects still
// run alongside this one.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
