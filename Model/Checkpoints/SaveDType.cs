namespace SmoothCache.Model.Checkpoints;

/// <summary>The dtype a writer stores float32 values in.</summary>
public enum SaveDType
{
    F32,
    F16,
}
