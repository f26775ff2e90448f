namespace SmoothCache.Model;

/// <summary>
/// A model whose blocks run their components through <see cref="Hook"/> (DESIGN §2); the cache and
/// calibration helpers install themselves here and restore the previous hook when disposed.
/// </summary>
public interface IHookable { IComponentHook? Hook { get; set; } int NumBlocks { get; } }
