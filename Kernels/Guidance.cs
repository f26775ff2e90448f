using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Classifier-free guidance: the model output is [2B, Cout, H, W] with the conditional half first;
/// for the first C channels (eps of a learned-sigma model) eps[B, C, H, W] = u + g (c - u).
/// With <c>doubled: false</c> the output is [B, Cout, H, W] and eps is just its first C channels.
/// The reference steps the doubled batch with eps repeated; both halves are the same elementwise
/// update of the same values, so stepping one half gives identical numbers.
/// </summary>
public static class Guidance
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> ModelOut, Eps;
        public int UncondOffset, C, Cout, Pixels;
        public float Scale;

        public readonly void Compute(int index)
        {
            int p = index % Pixels;
            int rest = index / Pixels;
            int ch = rest % C;
            int b = rest / C;
            float cond = ModelOut[(b * Cout + ch) * Pixels + p];
            float uncond = ModelOut[((b + UncondOffset) * Cout + ch) * Pixels + p];
            Eps[index] = uncond + Scale * (cond - uncond);
        }
    }

    public static Tensor Run(Tensor modelOut, int channels, float scale, bool doubled = true)
    {
        int rows = modelOut.Dim(0), cout = modelOut.Dim(1), h = modelOut.Dim(2), w = modelOut.Dim(3);
        if ((doubled && rows % 2 != 0) || channels > cout)
            throw new ArgumentException($"Guidance: model output {modelOut.ShapeText} does not hold {(doubled ? "a doubled batch of " : "")}{channels} channels");
        int b = doubled ? rows / 2 : rows;
        var eps = modelOut.Backend.Arena.Rent(b, channels, h, w);
        var args = new Args
        {
            ModelOut = modelOut.View, Eps = eps.View, UncondOffset = doubled ? b : 0, C = channels, Cout = cout,
            Pixels = h * w, Scale = doubled ? scale : 1f,
        };
        ElementLauncher.Launch(modelOut.Backend, (int)eps.Length, args);
        return eps;
    }
}
