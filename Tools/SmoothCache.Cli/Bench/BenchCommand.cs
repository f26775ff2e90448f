using System.CommandLine;
using SmoothCache.Cli.Commands;
using SmoothCache.Kernels;
using SmoothCache.Model;

namespace SmoothCache.Cli.Bench;

/// <summary>
/// `smoothcache bench`: kernel, forward and end-to-end sampling timings (DESIGN §6). Exit 1 when a
/// forward or sampling case failed (the others still ran and are in the table and the JSON).
/// </summary>
public static class BenchCommand
{
    public static Command Create(CliContext context)
    {
        var suite = new Option<string>("--suite") { Description = "kernels, forward, sampling or smoke (the GPU kernels against the portable ones, step by step)", DefaultValueFactory = _ => "kernels" };
        var device = DeviceOption.Create();
        var batch = new Option<int>("--batch") { Description = "kernels suite: batch; forward suite: a batch timed besides 2 and 16 (rows of the CFG-doubled batch)", DefaultValueFactory = _ => 20 };
        var iterations = new Option<int>("--iterations") { Description = "timed repetitions (kernels, forward)", DefaultValueFactory = _ => 5 };
        var steps = new Option<int>("--steps") { Description = "sampling suite: DDIM steps (the shipped schedules are for 50; for other steps the job calibrates its own)", DefaultValueFactory = _ => 50 };
        var runs = new Option<int>("--runs") { Description = "sampling suite: timed runs of each job (the median is reported)", DefaultValueFactory = _ => 3 };
        var images = new Option<int>("--images") { Description = "sampling suite: images per job (0: 8 for XL, 10 for dit-digits)", DefaultValueFactory = _ => 0 };
        var xl = new Option<bool>("--xl") { Description = "kernels suite: DiT-XL/2's shapes instead of dit-digits'; forward and sampling: run DiT-XL/2 on the CPU accelerator too (slow)" };
        var json = new Option<string?>("--json") { Description = "also write the results to this JSON file" };
        var profile = new Option<bool>("--profile") { Description = "forward suite: device time per kernel of one more forward per case" };
        var noPdl = new Option<bool>("--no-pdl") { Description = "forward and sampling suites: leave out the replays recorded with programmatic dependent launch (timed beside the plain ones on a GPU that has it)" };
        var precision = new Option<string>("--precision") { Description = "forward and sampling suites: fp16, fp32 or auto (both on CUDA, fp32 on the CPU accelerator)", DefaultValueFactory = _ => "auto" };
        var command = new Command("bench", "Time kernels, one forward, or whole sampling runs (cached vs uncached).")
        {
            suite, device, batch, iterations, steps, images, runs, xl, json, profile, precision, noPdl,
        };
        command.SetAction(parse =>
        {
            string name = parse.GetValue(suite)!;
            string? jsonPath = UserErrors.OutputFile("--json", parse.GetValue(json), ".json");
            if (name is not ("kernels" or "forward" or "sampling" or "smoke"))
                throw new UserInputException($"--suite '{name}' is unknown: expected kernels, forward, sampling or smoke");
            if (name == "smoke" && jsonPath is not null)
                throw new UserInputException("--json: the smoke suite writes no JSON; its checks pass or fail in its output and exit code");
            int count = parse.GetValue(iterations);
            if (count < 1) throw new UserInputException($"--iterations must be at least 1, got {count}");
            if (parse.GetValue(steps) < 1) throw new UserInputException($"--steps must be at least 1, got {parse.GetValue(steps)}");
            if (parse.GetValue(batch) is < 1 or > 4096) throw new UserInputException($"--batch must be from 1 to 4096, got {parse.GetValue(batch)}");
            if (parse.GetValue(runs) < 1) throw new UserInputException($"--runs must be at least 1, got {parse.GetValue(runs)}");
            if (parse.GetValue(images) < 0) throw new UserInputException($"--images must be 0 (default) or more, got {parse.GetValue(images)}");
            Precision? onlyPrecision;
            try
            {
                string text = parse.GetValue(precision)!;
                onlyPrecision = text.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : HalfConversion.ParsePrecision(text);
            }
            catch (ArgumentException e)
            {
                throw new UserInputException($"--precision: {e.Message} (or auto)");
            }
            using var backend = Backend.Create(DeviceOption.Resolve(parse, device));
            context.Out.WriteLine($"device: {backend.DeviceName}");
            if (backend.GemmTuning is { } tuning)
                context.Out.WriteLine($"GEMM tuning: {tuning.Summary}");
            if (backend.KernelOptions is { } options)
                context.Out.WriteLine($"kernel options: {options}");
            if (name == "smoke") return SmokeCheck.Run(backend, context.Out) ? ExitCodes.Success : ExitCodes.Internal;
            if (name == "kernels")
            {
                // dit-digits' shapes, or with --xl DiT-XL/2's (256 tokens, width 1152, 16 heads of 72), with the VAE's
                // kernels for the batch's images (half of it, with guidance) on CUDA (minutes on the CPU).
                var timings = parse.GetValue(xl)
                    ? KernelBench.Run(backend, new DiTConfig(), parse.GetValue(batch), count, context.Out,
                        vaeImages: backend.IsCuda ? Math.Max(1, parse.GetValue(batch) / 2) : 0)
                    : KernelBench.Run(backend, DiTConfig.Load(Path.Combine(SamplingOptions.ResolveModel(SamplingOptions.DefaultModel), "transformer", "config.json")),
                        parse.GetValue(batch), count, context.Out);
                if (jsonPath is not null)
                    BenchJson.Write(jsonPath, new
                    {
                        device = backend.DeviceName, suite = name, gemmTuning = backend.GemmTuning?.Summary, kernelOptions = backend.KernelOptions,
                        kernels = timings,
                    });
                return ExitCodes.Success;
            }

            var settings = new ModelBenchSettings(count, parse.GetValue(steps), parse.GetValue(images), parse.GetValue(xl),
                SamplingOptions.ResolveModel(SamplingOptions.DefaultModel), Path.Combine(AppContext.BaseDirectory, "schedules"),
                parse.GetValue(batch), parse.GetValue(profile), onlyPrecision, DependentReplays: !parse.GetValue(noPdl),
                JobRuns: parse.GetValue(runs));
            var report = new ModelBenchReport();
            if (name == "forward") ModelBench.Forward(backend, settings, report, context.Out);
            else ModelBench.Sampling(backend, settings, report, context.Out);
            foreach (var note in report.Notes) context.Out.WriteLine($"note: {note}");
            if (jsonPath is not null)
                BenchJson.Write(jsonPath, new
                {
                    device = backend.DeviceName, suite = name, forward = report.Forward, sampling = report.Sampling,
                    notes = report.Notes, failures = report.Failures,
                    // Which GEMM tuning table the times are on (null: the built-in choices).
                    gemmTuning = backend.GemmTuning?.Summary,
                    // Which kernel choices differ from the defaults (null: none).
                    kernelOptions = backend.KernelOptions,
                });
            return report.Failures.Count == 0 ? ExitCodes.Success : ExitCodes.Internal;
        });
        return command;
    }
}
