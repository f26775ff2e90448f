using System.CommandLine;
using SmoothCache.Cli.Bench;
using SmoothCache.Cli.Commands;

namespace SmoothCache.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Numbers print and parse the same on every machine (scripts read our output; "0.15" is a threshold everywhere),
        // and the parser's messages are the English ones Cli.ParseErrorText rewords.
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.CurrentCulture = invariant;
        System.Globalization.CultureInfo.DefaultThreadCurrentUICulture = System.Globalization.CultureInfo.CurrentUICulture = invariant;
        // SMOOTHCACHE_TRACE=1: report every exception where it is first thrown (a device fault can be
        // hidden by later errors raised while buffers are released).
        if (Environment.GetEnvironmentVariable("SMOOTHCACHE_TRACE") == "1")
            AppDomain.CurrentDomain.FirstChanceException += (_, e) =>
                Console.Error.WriteLine($"first-chance {e.Exception.GetType().Name}: {e.Exception.Message}\n{new System.Diagnostics.StackTrace(1, true)}");
        return Cli.Run(args, Console.Out, Console.Error);
    }
}

/// <summary>
/// The `smoothcache` command line (DESIGN §8). Exit codes: 0 success, 2 bad input (one line on
/// stderr), 1 internal failure. <see cref="Run"/> is what tests call in-process.
/// </summary>
public static class Cli
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var parse = Parse(args, new CliContext(stdout, stderr));
        if (SwallowedOption(parse) is { } swallowed)
        {
            stderr.WriteLine($"error: {swallowed}");
            return ExitCodes.BadInput;
        }
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {ParseErrorText(parse)}");
            return ExitCodes.BadInput;
        }
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            return parse.Invoke(config);
        }
        catch (Exception e) when (UserErrors.IsUserError(e))
        {
            stderr.WriteLine($"error: {UserErrors.Describe(e)}");
            return ExitCodes.BadInput;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("SMOOTHCACHE_TRACE") == "1") stderr.WriteLine(e);
            return ExitCodes.Internal;
        }
    }

    /// <summary>An option whose value is another of the command's options (`--out --labels 1`: the parser gives --out the
    /// value "--labels", then finds "1" unrecognized), said as what it is; null where there is none.</summary>
    private static string? SwallowedOption(ParseResult parse)
    {
        var names = parse.CommandResult.Command.Options.SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet();
        foreach (var option in parse.CommandResult.Children.OfType<System.CommandLine.Parsing.OptionResult>())
            foreach (var token in option.Tokens)
                if (names.Contains(token.Value))
                    return $"{option.Option.Name} took '{token.Value}' as its value: give {option.Option.Name} a value " +
                           $"(smoothcache {parse.CommandResult.Command.Name} --help lists its options)";
        return null;
    }

    /// <summary>The parser's first error in the user's words, with where help is: a mistyped command or option rather than
    /// the missing command that follows from it, .NET type names as the kind of value expected.</summary>
    private static string ParseErrorText(ParseResult parse)
    {
        var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized command or argument")) ?? parse.Errors[0];
        var command = parse.CommandResult.Command;
        bool root = command is RootCommand;
        string message = error.Message == "Required command was not provided." && root
            ? $"no command given: expected one of {string.Join(", ", command.Subcommands.Select(c => c.Name))}"
            : error.Message.TrimEnd('.')
                .Replace("as expected type 'System.Int32'", "as a whole number")
                .Replace("as expected type 'System.Int64'", "as a whole number")
                .Replace("as expected type 'System.Single'", "as a number")
                .Replace("as expected type 'System.Double'", "as a number");
        return $"{message} ({(root ? "smoothcache --help lists the commands" : $"smoothcache {command.Name} --help lists its options")})";
    }

    /// <summary>The command line parsed, not run (scripts' commands are checked this way in tests).</summary>
    internal static ParseResult Parse(string[] args, CliContext context)
    {
        var root = new RootCommand("Diffusion Transformer image generation on ILGPU, accelerated by SmoothCache.")
        {
            GenerateCommand.Create(context),
            CalibrateCommand.Create(context),
            InspectCommand.Create(context),
            SynthCommand.Create(context),
            EvalCommand.Create(context),
            BenchGemmCommand.Create(context),
            TuneCommand.Create(context),
            Bench.BenchCommand.Create(context),
            PtxCommand.Create(context),
        };
        return root.Parse(args);
    }
}

public static class ExitCodes
{
    public const int Success = 0, Internal = 1, BadInput = 2;
}
