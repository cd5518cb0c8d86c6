// CUTLASS sm_90 W8A8 GEMM (int8_gemm_sm90.hpp): TMA loads, INT8 WGMMA with int32 accumulators,
// warp-specialized producer/consumer pipeline, and an epilogue visitor tree that applies the token
// and channel scales and the bias before the f16 TMA store — no int32 matrix ever reaches memory.
// Tile configurations follow the ones vLLM's cutlass_scaled_mm uses for int8 on sm_90.
#include "kernels/cuda/int8_gemm_sm90.hpp"

#include <string>

#include "runtime/ir/error.hpp"

#if defined(LLMC_HAVE_CUTLASS)
#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#endif

namespace llmc::kernels::cuda::detail {

#if defined(LLMC_HAVE_CUTLASS)

namespace {

using namespace cute;

// GEMM M = tokens (A = q [m, k_pad]), N = output channels (B = q_w [n, k_pad], K-major), D = y
// row-major. Epilogue: D = token_scale ⊙ (channel_scale ⊙ acc) + bias, computed in f32.
template <class TileShape, class ClusterShape, class KernelSchedule, class EpilogueSchedule>
struct W8A8Gemm {
  using ElementD = cutlass::half_t;
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  using LayoutD = cutlass::layout::RowMajor;

  using Accum = cutlass::epilogue::fusion::Sm90AccFetch;
  using TokenScale = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<_1, _0, _0>>;
  using ChannelScale = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, _0>>;
  using Bias = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, ElementD, float, Stride<_0, _1, _0>>;
  using Scaled = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
      ChannelScale, Accum>;
  using Evt = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<cutlass::homogeneous_multiply_add, ElementD, float,
                                             cutlass::FloatRoundStyle::round_to_nearest>,
      TokenScale, Scaled, Bias>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, int32_t, float, void, LayoutD, 8, ElementD, LayoutD, 8,
      EpilogueSchedule, Evt>::CollectiveOp;
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, int8_t, LayoutA, 16, int8_t, LayoutB, 16, int32_t,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue,
                                                      cutlass::gemm::PersistentScheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static void run(const int8_t* q, const float* s, const int8_t* qw, const float* sw, const uint16_t* bias,
                  uint16_t* y, int64_t m, int64_t n, int64_t k, int64_t ldy, void* workspace, size_t ws_bytes,
                  cudaStream_t stream) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    const StrideA sa = make_stride(k, Int<1>{}, int64_t{0});
    const StrideB sb = make_stride(k, Int<1>{}, int64_t{0});
    const StrideD sd = make_stride(ldy, Int<1>{}, int64_t{0});
    typename Evt::Arguments evt{
        {s, 0.0f, {}},                      // TokenScale
        {{sw, 0.0f, {}}, {}, {}},           // ChannelScale ⊙ Accum
        {reinterpret_cast<const ElementD*>(bias), ElementD(0), {}},  // Bias (null → 0)
        {}};
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1},
                                  {q, sa, qw, sb},
                                  {evt, nullptr, sd, reinterpret_cast<ElementD*>(y), sd}};
    Gemm gemm;
    const std::string shape = " (m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + ")";
    check(gemm.can_implement(args) == cutlass::Status::kSuccess, "w8a8_sm90: CUTLASS cannot run this shape" + shape);
    const size_t need = Gemm::get_workspace_size(args);
    check(need <= ws_bytes, "w8a8_sm90: needs " + std::to_string(need) + " bytes of workspace, has " +
                                std::to_string(ws_bytes) + shape);
    cutlass::Status st = gemm.initialize(args, workspace, stream);
    check(st == cutlass::Status::kSuccess, std::string("w8a8_sm90: initialize: ") + cutlassGetStatusString(st) + shape);
    st = gemm.run(stream);
    check(st == cutlass::Status::kSuccess, std::string("w8a8_sm90: run: ") + cutlassGetStatusString(st) + shape);
  }
};

// m ≤ 64: a 64-row tile wastes rows but the call is bound by the weight's bytes, and the 1×4
// cluster multicasts each activation tile to four CTAs along N.
using SmallM = W8A8Gemm<Shape<_64, _64, _256>, Shape<_1, _4, _1>, cutlass::gemm::KernelTmaWarpSpecialized,
                        cutlass::epilogue::TmaWarpSpecialized>;
// 64 < m ≤ 128.
using MidM = W8A8Gemm<Shape<_64, _128, _128>, Shape<_2, _1, _1>, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                      cutlass::epilogue::TmaWarpSpecialized>;
// m > 128: two consumer warp groups ping-pong between tiles so that one's epilogue overlaps the
// other's MMAs.
using LargeM = W8A8Gemm<Shape<_128, _128, _128>, Shape<_2, _1, _1>, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                        cutlass::epilogue::TmaWarpSpecialized>;

}  // namespace

bool w8a8_sm90_compiled() { return true; }

void w8a8_sm90(const int8_t* q, const float* s, const int8_t* qw, const float* sw, const uint16_t* bias, uint16_t* y,
               int64_t m, int64_t n, int64_t k_pad, int64_t ldy, void* workspace, size_t ws_bytes,
               cudaStream_t stream) {
  if (m <= 64)
    SmallM::run(q, s, qw, sw, bias, y, m, n, k_pad, ldy, workspace, ws_bytes, stream);
  else if (m <= 128)
    MidM::run(q, s, qw, sw, bias, y, m, n, k_pad, ldy, workspace, ws_bytes, stream);
  else
    LargeM::run(q, s, qw, sw, bias, y, m, n, k_pad, ldy, workspace, ws_bytes, stream);
}

#else

bool w8a8_sm90_compiled() { return false; }

void w8a8_sm90(const int8_t*, const float*, const int8_t*, const float*, const uint16_t*, uint16_t*, int64_t, int64_t,
               int64_t, int64_t, void*, size_t, cudaStream_t) {
  throw Error("w8a8_sm90: built without CUTLASS (configure with LLMC_CUTLASS_ROOT pointing at its include/)",
              ErrorKind::Runtime);
}

#endif

}  // namespace llmc::kernels::cuda::detail
