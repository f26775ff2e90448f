namespace SmoothCache.Model;

/// <summary>
/// A model whose blocks run their components through <see cref="Hook"/> (DESIGN §2); the cache and
/// calibration helpers install themselves here and restore the previous hook when disposed.
/// </summary>
public interface IHookable
{
    /// <summary>What each block runs its attention and MLP through; null computes them directly.</summary>
    IComponentHook? Hook { get; set; }
    /// <summary>Number of blocks: the hook sees block indices 0 .. NumBlocks - 1 (schedule keys are checked against it).</summary>
    int NumBlocks { get; }
}
