namespace SmoothCache.Tests.Cli;

/// <summary>Runs the smoothcache command line in-process and captures what it printed.</summary>
public static class CliRunner
{
    public sealed record Outcome(int Code, string Out, string Error)
    {
        /// <summary>stderr split into non-empty lines.</summary>
        public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public static Outcome Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = SmoothCache.Cli.Cli.Run(args, stdout, stderr);
        return new Outcome(code, stdout.ToString(), stderr.ToString());
    }
}
