// Layer x expert statistics for the salience heatmaps, and the loaders that fill them.
//
// Sources (all plain data; nothing here computes on weights):
//  - a probe HDF5 file (`razor probe`, docs/probe-format.md): /routing/{freq,wmass,asal},
//    /weights/{wfro_gate_up,wfro_down,rnorm} as float64 [L, E] and /layers/entropy [L]. Contiguous float64
//    datasets are memory-mapped through H5Dget_offset (no HDF5 read path); chunked or converted ones fall back
//    to H5Dread.
//  - razor_quant_summary.json (`razor quantize`): per routed expert and projection the relative Frobenius error;
//    the cell value is the mean over the expert's projections.
//  - a llama.cpp GGUF imatrix: per expert tensor `blk.L.ffn_*_exps.weight` the `.counts` [n_expert] are routing
//    counts (the maximum over the layer's expert tensors is taken: gate/up/down see the same rows).
//
// Loaders are plain functions, safe to run on a worker thread (QtConcurrent); errors come back as
// HeatmapSource::error, never as exceptions.
#pragma once
#include <QString>
#include <QStringList>
#include <QVector>
#include <cmath>

struct HeatmapGrid {
  QString name;       // "routing count"
  int rows = 0;       // layers
  int cols = 0;       // experts
  QVector<double> values;  // rows x cols, row-major; NaN = no value

  bool isEmpty() const { return rows <= 0 || cols <= 0; }
  double at(int r, int c) const { return values[qsizetype(r) * cols + c]; }
  static HeatmapGrid filled(const QString& name, int rows, int cols, double v = 0.0);
};

// One opened file with every statistic it provides.
struct HeatmapSource {
  enum class Kind { Probe, QuantSummary, Imatrix, Synthetic };
  Kind kind = Kind::Probe;
  QString path;
  QString error;                 // non-empty: loading failed, message for the user
  QVector<HeatmapGrid> grids;    // statistics, in display order
  QVector<double> counts;        // routing counts [rows x cols] for cold flags; empty when unknown
  QVector<double> entropy;       // per-layer H(p)/log E; empty when unknown
  int rows = 0, cols = 0;
  QString summary;               // one line: tokens probed, chunks, ...

  bool ok() const { return error.isEmpty(); }
  const HeatmapGrid* grid(const QString& name) const;
  QStringList statNames() const;
  QString kindName() const;
};

// Cold-expert flags derived from routing counts: cold = count < 0.1 x the layer's mean count; hole = count == 0
// (for an imatrix: a coverage hole, llama.cpp falls back to uniform importance for that expert).
struct ColdFlags {
  static constexpr double kColdShareOfMean = 0.1;  // probe-format.md: cold_frac uses the same 10 % rule
  enum Flag : quint8 { None = 0, Cold = 1, Hole = 2 };
  QVector<quint8> flags;  // rows x cols
  QVector<int> coldPerLayer, holesPerLayer;
  static ColdFlags fromCounts(const QVector<double>& counts, int rows, int cols);
};

// Normalised routing entropy per layer, H(p)/log E with p = (count + 1e-9) normalised (probe-format.md).
QVector<double> layerEntropyFromCounts(const QVector<double>& counts, int rows, int cols);

HeatmapSource loadProbeHeatmaps(const QString& path);
HeatmapSource loadQuantSummaryHeatmaps(const QString& path);
HeatmapSource loadImatrixHeatmaps(const QString& path);
// Chooses the loader from the file (".h5"/".hdf5", ".json", otherwise GGUF imatrix).
HeatmapSource loadHeatmapSource(const QString& path);
// Deterministic synthetic statistics (benchmarks, tests, screenshots of large layouts): a skewed routing
// count with some cold experts and a few zero-count holes.
HeatmapSource syntheticHeatmapSource(int rows, int cols, quint32 seed = 1);
