namespace SmoothCache.Cli;

/// <summary>Where a command writes: results to stdout, progress and errors to stderr.</summary>
public sealed record CliContext(TextWriter Out, TextWriter Error)
{
    /// <summary>True when stderr is a terminal and a live progress bar makes sense.</summary>
    public bool Interactive => ReferenceEquals(Error, Console.Error) && !Console.IsErrorRedirected;

    /// <summary>True when stderr is the process's, redirected (a CI log, a file): progress goes there as plain lines.</summary>
    public bool Logged => ReferenceEquals(Error, Console.Error) && Console.IsErrorRedirected;
}
