using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;

namespace SmoothCache.Cli;

/// <summary>Which exceptions are the user's input being wrong (exit 2, one line) rather than a bug.</summary>
public static class UserErrors
{
    public static bool IsUserError(Exception e) => e is ArgumentException or CheckpointException
        or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or UserInputException
        or SchedulerConfigException or CacheScheduleException or InsufficientMemoryException or DeviceUnavailableException;

    public static string Describe(Exception e) => e switch
    {
        ArgumentOutOfRangeException a => StripParameter(a.Message, a.ParamName),
        ArgumentException a => StripParameter(a.Message, a.ParamName),
        _ => e.Message,
    };

    /// <summary>Parses an option's value with <paramref name="parse"/>; its <see cref="ArgumentException"/> becomes a
    /// <see cref="UserInputException"/> that names the option.</summary>
    public static T ParseOption<T>(string option, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (ArgumentException e)
        {
            throw new UserInputException($"{option}: {Describe(e)}");
        }
    }

    // .NET appends " (Parameter 'x')" to argument messages; the user never named a parameter.
    private static string StripParameter(string message, string? name) =>
        name is null ? message : message.Replace($" (Parameter '{name}')", "");
}

/// <summary>A command-line value that is wrong; the message says which option and what was expected.</summary>
public sealed class UserInputException(string message) : Exception(message);
