using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Devices;
using PromptFaces.Training.Evaluation;
using PromptFaces.Training.Faces;
using Spectre.Console;
using TorchSharp;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces train judge</c>: trains the evaluation's attribute judge on renders and reports its held-out
/// accuracy per attribute. Progress is one log line per evaluation on standard error, so that a background run's log
/// reads well; the summary goes to standard output.
/// </summary>
internal static class TrainJudgeCommand
{
    public static Command Create()
    {
        var defaults = new JudgeTrainingOptions();
        var output = new Option<string>("--out", "-o") { Description = "Output judge checkpoint (.safetensors).", Required = true };
        var steps = new Option<int>("--steps") { Description = "Training steps.", DefaultValueFactory = _ => defaults.Steps };
        var batch = new Option<int>("--batch") { Description = "Faces per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var trainFaces = new Option<int>("--train-faces") { Description = "Rendered training faces (augmented afresh on every visit).", DefaultValueFactory = _ => defaults.TrainFaces };
        var heldOut = new Option<int>("--held-out-faces") { Description = "Rendered held-out faces (another seed).", DefaultValueFactory = _ => defaults.HeldOutFaces };
        var lr = new Option<double>("--lr") { Description = "Peak AdamW learning rate.", DefaultValueFactory = _ => defaults.LearningRate };
        var width = new Option<int>("--width") { Description = "Channels of the first stage (then 2x, 3x, 4x).", DefaultValueFactory = _ => defaults.Model.Width };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the faces, weights, batch order and augmentation.", DefaultValueFactory = _ => defaults.Seed };
        var evalEvery = new Option<int>("--eval-every") { Description = "Held-out accuracy every N steps (and at the end).", DefaultValueFactory = _ => defaults.EvaluateEvery };
        var logEvery = new Option<int>("--log-every") { Description = "A progress line every N steps.", DefaultValueFactory = _ => 25 };
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON object." };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        // One thread by default, unlike other commands: libtorch's multi-threaded CPU convolution backward gives wrong,
        // run-dependent input gradients for narrow 3x3 layers on some CPUs (seen on AMD EPYC with 2 threads), and the
        // judge trains in minutes anyway.
        var threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch (default 1: with more, libtorch's CPU convolution backward gives wrong gradients for narrow layers on some CPUs).", DefaultValueFactory = _ => 1 };

        var command = new Command("judge", "Train the attribute judge of 'promptfaces eval' on rendered faces with their true labels.")
        {
            output, steps, batch, trainFaces, heldOut, lr, width, seed, evalEvery, logEvery, json, device, libtorch, threads,
        };
        command.SetAction(r =>
        {
            var options = new JudgeTrainingOptions
            {
                Model = new AttributeJudgeConfig { Width = r.GetValue(width) },
                Steps = r.GetValue(steps),
                BatchSize = r.GetValue(batch),
                TrainFaces = r.GetValue(trainFaces),
                HeldOutFaces = r.GetValue(heldOut),
                LearningRate = r.GetValue(lr),
                Seed = r.GetValue(seed),
                EvaluateEvery = r.GetValue(evalEvery),
            };
            if (options.Validate() is string problem) throw new CliException(problem);
            try { options.Model.Validate("--width"); }
            catch (InvalidDataException e) { throw new CliException(e.Message); }
            var outPath = r.GetValue(output)!;
            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            int every = Math.Max(1, r.GetValue(logEvery));
            var inv = CultureInfo.InvariantCulture;
            void Log(string line) => Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss} {line}");

            Log($"training the judge: {options.Steps} steps of {options.BatchSize} faces, {options.TrainFaces} training and {options.HeldOutFaces} held-out faces, {ComputeDevices.DescribeDevice(dev)}");
            var result = JudgeTrainer.Train(options, dev, p =>
            {
                if (p.Step == 0) { Log(p.Phase); return; }
                if (p.Step % every == 0 || p.Step == p.TotalSteps)
                    Log(string.Create(inv, $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:E2} {p.SecondsPerStep:F2} s/step"));
                if (p.HeldOutAccuracy is { } acc)
                    Log(string.Create(inv, $"step {p.Step}: held-out accuracy min {100 * acc.Min():F1} % (") +
                        string.Join(", ", FaceAttributes.Schema.Select((s, a) => string.Create(inv, $"{s.Name} {100 * acc[a]:F1} %"))) + ")");
            });
            using var judge = result.Judge;
            judge.Save(outPath, result.Metadata(options));

            var accuracy = JudgeTrainer.ByName(result.HeldOutAccuracy);
            var blurred = JudgeTrainer.ByName(result.HeldOutAccuracyBlurred);
            if (r.GetValue(json))
            {
                var summary = new JsonObject
                {
                    ["out"] = Path.GetFullPath(outPath),
                    ["steps"] = result.Steps,
                    ["seconds"] = Math.Round(result.Seconds, 1),
                    ["parameters"] = judge.ParameterCount,
                    ["held_out_faces"] = options.HeldOutFaces,
                    ["held_out_accuracy"] = JsonSerializer.SerializeToNode(accuracy),
                    ["held_out_accuracy_blurred"] = JsonSerializer.SerializeToNode(blurred),
                    ["blur_sigma"] = JudgeTrainer.HeldOutBlurSigma,
                    ["min_accuracy"] = Math.Round(result.HeldOutAccuracy.Min(), 5),
                    ["meets_goal"] = result.HeldOutAccuracy.Min() >= Evaluator.JudgeGoal,
                };
                Console.WriteLine(summary.ToJsonString());
            }
            else
            {
                Console.WriteLine(string.Create(inv, $"{outPath}: {judge.ParameterCount:N0} parameters, {result.Steps} steps in {result.Seconds / 60:F1} min; held-out accuracy on {options.HeldOutFaces} renders (clean / blurred σ {JudgeTrainer.HeldOutBlurSigma:F0} px):"));
                foreach (var (name, value) in accuracy)
                    Console.WriteLine(string.Create(inv, $"  {name,-12} {100 * value,6:F1} %   {100 * blurred[name],6:F1} %"));
            }
            return 0;
        });
        return command;
    }
}
