using SmoothCache.Model;

namespace SmoothCache.Caching;

/// <summary>Installs a helper as a model's hook and puts the previous hook back on detach (enable/disable).</summary>
internal sealed class HookAttachment
{
    private readonly IHookable _model;
    private readonly IComponentHook _hook;
    private readonly IComponentHook? _previous;

    private HookAttachment(IHookable model, IComponentHook hook)
    {
        _model = model;
        _hook = hook;
        _previous = model.Hook;
    }

    public static HookAttachment Attach(IHookable model, IComponentHook hook)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Hook is SmoothCacheHelper or CalibrationHelper)
            throw new InvalidOperationException(
                $"cannot enable {hook.GetType().Name}: a {model.Hook.GetType().Name} is already enabled on this model; " +
                "dispose it (disable) first");
        var attachment = new HookAttachment(model, hook);
        model.Hook = hook;
        return attachment;
    }

    public void Detach()
    {
        // Only undo our own installation: if someone replaced the hook since, theirs stays.
        if (ReferenceEquals(_model.Hook, _hook)) _model.Hook = _previous;
    }
}
