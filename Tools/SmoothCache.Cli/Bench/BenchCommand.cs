using System.CommandLine;
using SmoothCache.Kernels;

namespace SmoothCache.Cli.Bench;

/// <summary>`smoothcache bench`: kernel, forward and end-to-end sampling timings (DESIGN §6).</summary>
public static class BenchCommand
{
    public static Command Create(CliContext context)
    {
        var suite = new Option<string>("--suite") { Description = "kernels, forward or sampling", DefaultValueFactory = _ => "kernels" };
        var device = new Option<string>("--device") { Description = "auto, cuda or cpu", DefaultValueFactory = _ => "auto" };
        var batch = new Option<int>("--batch") { Description = "batch (rows of the CFG-doubled batch)", DefaultValueFactory = _ => 20 };
        var iterations = new Option<int>("--iterations") { Description = "timed repetitions", DefaultValueFactory = _ => 5 };
        var command = new Command("bench", "Time kernels, one forward, or whole sampling runs (cached vs uncached).") { suite, device, batch, iterations };
        command.SetAction(parse =>
        {
            using var backend = Backend.Create(Backend.ParseKind(parse.GetValue(device)!));
            context.Out.WriteLine($"device: {backend.DeviceName}");
            switch (parse.GetValue(suite))
            {
                case "kernels":
                    KernelBench.Run(backend, parse.GetValue(batch), 64, 64, 4, parse.GetValue(iterations), context.Out);
                    break;
                default:
                    throw new UserInputException($"--suite '{parse.GetValue(suite)}' is unknown: expected kernels, forward or sampling");
            }
            return ExitCodes.Success;
        });
        return command;
    }
}
