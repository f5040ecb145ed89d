#include "HeatmapData.h"

#include <hdf5.h>

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QMutex>
#include <QMutexLocker>
#include <QRandomGenerator>
#include <QRegularExpression>
#include <algorithm>
#include <cstring>
#include <limits>

#include "gguf/imatrix.h"

HeatmapGrid HeatmapGrid::filled(const QString& name, int rows, int cols, double v) {
  HeatmapGrid g;
  g.name = name;
  g.rows = rows;
  g.cols = cols;
  g.values.fill(v, qsizetype(rows) * cols);
  return g;
}

const HeatmapGrid* HeatmapSource::grid(const QString& name) const {
  for (const auto& g : grids)
    if (g.name == name) return &g;
  return nullptr;
}

QStringList HeatmapSource::statNames() const {
  QStringList out;
  for (const auto& g : grids) out << g.name;
  return out;
}

QString HeatmapSource::kindName() const {
  switch (kind) {
    case Kind::Probe: return QStringLiteral("probe");
    case Kind::QuantSummary: return QStringLiteral("quant summary");
    case Kind::Imatrix: return QStringLiteral("imatrix");
    case Kind::Synthetic: return QStringLiteral("synthetic");
  }
  return {};
}

ColdFlags ColdFlags::fromCounts(const QVector<double>& counts, int rows, int cols) {
  ColdFlags f;
  f.flags.fill(None, qsizetype(rows) * cols);
  f.coldPerLayer.fill(0, rows);
  f.holesPerLayer.fill(0, rows);
  if (counts.size() != qsizetype(rows) * cols || cols == 0) return f;
  for (int r = 0; r < rows; ++r) {
    const double* row = counts.constData() + qsizetype(r) * cols;
    double sum = 0;
    for (int c = 0; c < cols; ++c) sum += row[c];
    const double mean = sum / cols;
    for (int c = 0; c < cols; ++c) {
      quint8 fl = None;
      if (row[c] <= 0.0) {
        fl = Hole | Cold;
        ++f.holesPerLayer[r];
        ++f.coldPerLayer[r];
      } else if (row[c] < kColdShareOfMean * mean) {
        fl = Cold;
        ++f.coldPerLayer[r];
      }
      f.flags[qsizetype(r) * cols + c] = fl;
    }
  }
  return f;
}

QVector<double> layerEntropyFromCounts(const QVector<double>& counts, int rows, int cols) {
  QVector<double> h(rows, std::numeric_limits<double>::quiet_NaN());
  if (counts.size() != qsizetype(rows) * cols || cols < 2) return h;
  constexpr double kEps = 1e-9;  // the probe's smoothing (probe-format.md /layers/entropy)
  for (int r = 0; r < rows; ++r) {
    const double* row = counts.constData() + qsizetype(r) * cols;
    double total = 0;
    for (int c = 0; c < cols; ++c) total += row[c] + kEps;
    double e = 0;
    for (int c = 0; c < cols; ++c) {
      const double p = (row[c] + kEps) / total;
      e -= p * std::log(p);
    }
    h[r] = e / std::log(double(cols));
  }
  return h;
}

// ---- probe HDF5 -----------------------------------------------------------------------------------------

namespace {

// The HDF5 library of Debian is not built thread-safe: one loader at a time.
QMutex& hdf5Mutex() {
  static QMutex m;
  return m;
}

struct H5Handle {
  hid_t id = H5I_INVALID_HID;
  herr_t (*close)(hid_t) = nullptr;
  H5Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~H5Handle() {
    if (id >= 0 && close) close(id);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  bool ok() const { return id >= 0; }
};

// Reads a float64 dataset of rank 1 or 2. Contiguous, unfiltered little-endian float64 data is read straight
// from a memory map of the file at H5Dget_offset; anything else goes through H5Dread.
bool readDoubles(hid_t file, QFile& mapped, const char* path, QVector<double>* out, QVector<hsize_t>* dims) {
  if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return false;
  H5Handle ds(H5Dopen2(file, path, H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) return false;
  H5Handle space(H5Dget_space(ds.id), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id);
  if (rank < 1 || rank > 2) return false;
  hsize_t d[2] = {0, 0};
  H5Sget_simple_extent_dims(space.id, d, nullptr);
  dims->clear();
  for (int i = 0; i < rank; ++i) dims->push_back(d[i]);
  const hsize_t n = rank == 1 ? d[0] : d[0] * d[1];
  out->resize(qsizetype(n));
  if (n == 0) return true;

  H5Handle type(H5Dget_type(ds.id), H5Tclose);
  H5Handle dcpl(H5Dget_create_plist(ds.id), H5Pclose);
  const haddr_t off = H5Dget_offset(ds.id);
  const bool contiguous = H5Pget_layout(dcpl.id) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl.id) == 0;
  const bool f64le = H5Tequal(type.id, H5T_IEEE_F64LE) > 0 && QSysInfo::ByteOrder == QSysInfo::LittleEndian;
  if (contiguous && f64le && off != HADDR_UNDEF && mapped.isOpen() &&
      qint64(off + n * sizeof(double)) <= mapped.size()) {
    if (uchar* p = mapped.map(qint64(off), qint64(n * sizeof(double)))) {
      std::memcpy(out->data(), p, n * sizeof(double));
      mapped.unmap(p);
      return true;
    }
  }
  return H5Dread(ds.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data()) >= 0;
}

template <typename T>
bool readAttr(hid_t obj, const char* name, hid_t memType, T* v) {
  if (H5Aexists(obj, name) <= 0) return false;
  H5Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  return a.ok() && H5Aread(a.id, memType, v) >= 0;
}

}  // namespace

HeatmapSource loadProbeHeatmaps(const QString& path) {
  HeatmapSource src;
  src.kind = HeatmapSource::Kind::Probe;
  src.path = path;
  QMutexLocker lock(&hdf5Mutex());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (!QFileInfo::exists(path)) {
    src.error = path + QStringLiteral(": no such file");
    return src;
  }
  const QByteArray native = QFile::encodeName(path);
  if (H5Fis_hdf5(native.constData()) <= 0) {
    src.error = path + QStringLiteral(": not an HDF5 file (expected the output of `razor probe`)");
    return src;
  }
  H5Handle file(H5Fopen(native.constData(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) {
    src.error = path + QStringLiteral(": HDF5 open failed");
    return src;
  }
  QFile mapped(path);
  mapped.open(QIODevice::ReadOnly);

  struct Stat {
    const char* ds;
    const char* name;
  };
  static const Stat kStats[] = {
      {"/routing/freq", "routing count"},       {"/routing/wmass", "gate mass"},
      {"/routing/asal", "activation salience"}, {"/weights/wfro_gate_up", "weight norm (gate+up)"},
      {"/weights/wfro_down", "weight norm (down)"}, {"/weights/rnorm", "router row norm"},
  };
  for (const auto& s : kStats) {
    QVector<double> v;
    QVector<hsize_t> dims;
    if (!readDoubles(file.id, mapped, s.ds, &v, &dims) || dims.size() != 2) continue;
    if (src.rows == 0) {
      src.rows = int(dims[0]);
      src.cols = int(dims[1]);
    }
    if (int(dims[0]) != src.rows || int(dims[1]) != src.cols) continue;
    HeatmapGrid g;
    g.name = QString::fromLatin1(s.name);
    g.rows = src.rows;
    g.cols = src.cols;
    g.values = std::move(v);
    if (g.name == QLatin1String("routing count")) src.counts = g.values;
    src.grids.push_back(std::move(g));
  }
  if (src.grids.isEmpty()) {
    src.error = path + QStringLiteral(": no /routing or /weights datasets (docs/probe-format.md)");
    return src;
  }
  QVector<double> ent;
  QVector<hsize_t> edims;
  if (readDoubles(file.id, mapped, "/layers/entropy", &ent, &edims) && ent.size() == src.rows)
    src.entropy = ent;
  else
    src.entropy = layerEntropyFromCounts(src.counts, src.rows, src.cols);
  quint64 tokens = 0;
  qint32 topk = 0;
  H5Handle root(H5Gopen2(file.id, "/", H5P_DEFAULT), H5Gclose);
  readAttr(root.id, "n_tokens", H5T_NATIVE_UINT64, &tokens);
  readAttr(root.id, "top_k", H5T_NATIVE_INT32, &topk);
  src.summary = QStringLiteral("probe: %1 layers x %2 experts, top-%3, %4 tokens")
                    .arg(src.rows)
                    .arg(src.cols)
                    .arg(topk)
                    .arg(tokens);
  return src;
}

// ---- razor_quant_summary.json ----------------------------------------------------------------------------

HeatmapSource loadQuantSummaryHeatmaps(const QString& path) {
  HeatmapSource src;
  src.kind = HeatmapSource::Kind::QuantSummary;
  src.path = path;
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    src.error = path + QStringLiteral(": cannot open: ") + f.errorString();
    return src;
  }
  QJsonParseError pe;
  const auto doc = QJsonDocument::fromJson(f.readAll(), &pe);
  if (doc.isNull()) {
    src.error = path + QStringLiteral(": not valid JSON: ") + pe.errorString();
    return src;
  }
  const QJsonObject root = doc.object();
  if (root.value(QStringLiteral("format")).toString() != QLatin1String("razor.quant_summary/1")) {
    src.error = path + QStringLiteral(": not a razor.quant_summary/1 file (written by `razor quantize`)");
    return src;
  }
  const QJsonArray experts = root.value(QStringLiteral("experts")).toArray();
  int rows = 0, cols = 0;
  for (const auto& v : experts) {
    const auto o = v.toObject();
    rows = std::max(rows, o.value(QStringLiteral("layer")).toInt(-1) + 1);
    cols = std::max(cols, o.value(QStringLiteral("expert")).toInt(-1) + 1);
  }
  if (rows == 0 || cols == 0) {
    src.error = path + QStringLiteral(": the summary lists no routed experts");
    return src;
  }
  src.rows = rows;
  src.cols = cols;
  QVector<double> sum(qsizetype(rows) * cols, 0.0), n(qsizetype(rows) * cols, 0.0),
      bits(qsizetype(rows) * cols, std::numeric_limits<double>::quiet_NaN());
  for (const auto& v : experts) {
    const auto o = v.toObject();
    const int l = o.value(QStringLiteral("layer")).toInt(-1), e = o.value(QStringLiteral("expert")).toInt(-1);
    if (l < 0 || e < 0) continue;
    const qsizetype i = qsizetype(l) * cols + e;
    sum[i] += o.value(QStringLiteral("rel_error")).toDouble();
    n[i] += 1;
    bits[i] = o.value(QStringLiteral("bits")).toDouble();
  }
  HeatmapGrid err = HeatmapGrid::filled(QStringLiteral("quant error"), rows, cols);
  for (qsizetype i = 0; i < err.values.size(); ++i)
    err.values[i] = n[i] > 0 ? sum[i] / n[i] : std::numeric_limits<double>::quiet_NaN();
  src.grids.push_back(err);
  HeatmapGrid b = HeatmapGrid::filled(QStringLiteral("quantized bits"), rows, cols);
  b.values = bits;
  src.grids.push_back(b);
  src.summary = QStringLiteral("quant summary: rel. error %1, %2 effective bits")
                    .arg(root.value(QStringLiteral("totals")).toObject().value(QStringLiteral("rel_error")).toDouble(), 0,
                         'g', 4)
                    .arg(root.value(QStringLiteral("totals"))
                             .toObject()
                             .value(QStringLiteral("seed_effective_bits"))
                             .toDouble(),
                         0, 'f', 3);
  return src;
}

// ---- GGUF imatrix ----------------------------------------------------------------------------------------

HeatmapSource loadImatrixHeatmaps(const QString& path) {
  HeatmapSource src;
  src.kind = HeatmapSource::Kind::Imatrix;
  src.path = path;
  auto im = razor::gguf::read_imatrix(QFile::encodeName(path).toStdString());
  if (!im.ok()) {
    src.error = QString::fromStdString(im.error().to_string());
    return src;
  }
  static const QRegularExpression kExp(QStringLiteral("^blk\\.(\\d+)\\.ffn_(gate|up|down|gate_up)_exps\\.weight$"));
  struct Layer {
    QVector<double> counts;
    QVector<double> energy;  // mean in_sum2 / count over columns, down projection preferred
  };
  QMap<int, Layer> layers;
  int cols = 0;
  for (const auto& e : im->entries) {
    const auto m = kExp.match(QString::fromStdString(e.name));
    if (!m.hasMatch() || e.n_mat < 1) continue;
    const int l = m.captured(1).toInt();
    Layer& L = layers[l];
    cols = std::max<int>(cols, int(e.n_mat));
    if (L.counts.size() < e.n_mat) L.counts.resize(e.n_mat, 0.0);
    if (L.energy.size() < e.n_mat) L.energy.resize(e.n_mat, 0.0);
    for (int64_t x = 0; x < e.n_mat; ++x) {
      const double c = x < int64_t(e.counts.size()) ? double(e.counts[size_t(x)]) : 0.0;
      L.counts[x] = std::max(L.counts[x], c);
      if (m.captured(2) != QLatin1String("down") && c > 0 && e.n_per_row > 0) {
        double s = 0;
        for (int64_t i = 0; i < e.n_per_row; ++i) s += e.in_sum2[size_t(x * e.n_per_row + i)];
        L.energy[x] = s / (c * double(e.n_per_row));
      }
    }
  }
  if (layers.isEmpty()) {
    src.error = path + QStringLiteral(": the imatrix has no routed-expert entries (blk.N.ffn_*_exps.weight)");
    return src;
  }
  src.rows = layers.lastKey() + 1;
  src.cols = cols;
  HeatmapGrid cnt = HeatmapGrid::filled(QStringLiteral("routing count"), src.rows, cols, 0.0);
  HeatmapGrid en = HeatmapGrid::filled(QStringLiteral("input energy"), src.rows, cols,
                                       std::numeric_limits<double>::quiet_NaN());
  for (auto it = layers.cbegin(); it != layers.cend(); ++it)
    for (int x = 0; x < it->counts.size(); ++x) {
      cnt.values[qsizetype(it.key()) * cols + x] = it->counts[x];
      if (it->counts[x] > 0) en.values[qsizetype(it.key()) * cols + x] = it->energy[x];
    }
  src.counts = cnt.values;
  src.entropy = layerEntropyFromCounts(src.counts, src.rows, src.cols);
  src.grids = {cnt, en};
  src.summary = QStringLiteral("imatrix: %1 chunks of %2 tokens, %3 entries")
                    .arg(im->chunk_count)
                    .arg(im->chunk_size)
                    .arg(im->entries.size());
  return src;
}

HeatmapSource loadHeatmapSource(const QString& path) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (suffix == QLatin1String("h5") || suffix == QLatin1String("hdf5")) return loadProbeHeatmaps(path);
  if (suffix == QLatin1String("json")) return loadQuantSummaryHeatmaps(path);
  return loadImatrixHeatmaps(path);
}

HeatmapSource syntheticHeatmapSource(int rows, int cols, quint32 seed) {
  HeatmapSource src;
  src.kind = HeatmapSource::Kind::Synthetic;
  src.path = QStringLiteral("synthetic %1x%2").arg(rows).arg(cols);
  src.rows = rows;
  src.cols = cols;
  QRandomGenerator rng(seed);
  HeatmapGrid cnt = HeatmapGrid::filled(QStringLiteral("routing count"), rows, cols);
  HeatmapGrid mass = HeatmapGrid::filled(QStringLiteral("gate mass"), rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      // Zipf-like popularity, shuffled per layer, with an occasional dead expert.
      const double rank = double((c * 2654435761u + quint32(r) * 40503u) % quint32(cols)) + 1.0;
      double v = 4000.0 / std::pow(rank, 0.9) * (0.7 + 0.6 * rng.generateDouble());
      if (rng.bounded(200) == 0) v = 0;
      cnt.values[qsizetype(r) * cols + c] = std::floor(v);
      mass.values[qsizetype(r) * cols + c] = std::floor(v) * (0.2 + 0.1 * rng.generateDouble());
    }
  src.counts = cnt.values;
  src.entropy = layerEntropyFromCounts(src.counts, rows, cols);
  src.grids = {cnt, mass};
  src.summary = QStringLiteral("synthetic statistics, %1 layers x %2 experts").arg(rows).arg(cols);
  return src;
}
