using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// Classifier-free guidance on a doubled batch: the model output is [2B, Cout, H, W] with the
/// conditional half first; for the first C channels e = u + g (c - u) is written to both halves of
/// eps [2B, C, H, W] (the scheduler then steps the doubled batch, as the reference does).
/// </summary>
public static class Guidance
{
    public struct Args
    {
        public ArrayView<float> ModelOut, Eps;
        public int Half, C, Cout, Pixels;
        public float Scale;
    }

    public static void Kernel(Index1D index, Args a)
    {
        int p = index % a.Pixels;
        int rest = index / a.Pixels;
        int ch = rest % a.C;
        int b = rest / a.C;
        float cond = a.ModelOut[(b * a.Cout + ch) * a.Pixels + p];
        float uncond = a.ModelOut[((b + a.Half) * a.Cout + ch) * a.Pixels + p];
        float e = uncond + a.Scale * (cond - uncond);
        a.Eps[index] = e;
        a.Eps[index + a.Half * a.C * a.Pixels] = e;
    }

    public static Tensor Run(Tensor modelOut, int channels, float scale)
    {
        int b2 = modelOut.Dim(0), cout = modelOut.Dim(1), h = modelOut.Dim(2), w = modelOut.Dim(3);
        if (b2 % 2 != 0 || channels > cout)
            throw new ArgumentException($"Guidance: model output {modelOut.ShapeText} is not a doubled batch with {channels} channels");
        var eps = modelOut.Backend.Arena.Rent(b2, channels, h, w);
        var args = new Args { ModelOut = modelOut.View, Eps = eps.View, Half = b2 / 2, C = channels, Cout = cout, Pixels = h * w, Scale = scale };
        modelOut.Backend.Load<Args>(Kernel)(b2 / 2 * channels * h * w, args);
        return eps;
    }
}
