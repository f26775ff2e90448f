using System.CommandLine;
using SmoothCache.Kernels;

namespace SmoothCache.Cli;

/// <summary>The --device option every command that runs kernels takes.</summary>
public static class DeviceOption
{
    public static Option<string> Create() => new("--device")
    {
        Description = "auto (CUDA device 0 if there is one, else the CPU), cuda, cuda:N (CUDA device N) or cpu",
        DefaultValueFactory = _ => "auto",
    };

    public static DeviceChoice Resolve(ParseResult parse, Option<string> option) =>
        UserErrors.ParseOption("--device", () => DeviceChoice.Parse(parse.GetValue(option)!));
}
