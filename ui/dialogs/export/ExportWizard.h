// ExportWizard: HF checkpoint -> GGUF, page by page:
//   source (checkpoint folder) -> recipe (a GGUF tensor-type preset from recipes/gguf/, one uniform type, a
//   recipe file, e.g. one written from the allocation, or "Fit a file size": the whole-file allocation run as a
//   worker job, its recipe used; default / output / token-embedding types from the ggml type table) -> imatrix (file picker; warns when a chosen type needs one) -> review (the "pack" job with
//   dry_run: size and bits per weight by type and by role, fallbacks and notes) -> run (the "pack" job) ->
//   validate (the "validate-gguf" job: the real llama.cpp) -> done (the file and a report).
// Every step is a job of the registry in a worker: the pool when one is attached (jobs dock, progress, cancel),
// else a private `razor worker --cpu`; the GUI thread only reads their events. Results of a superseded review
// (the user went back and changed something) are dropped.
#pragma once
#include <QJsonObject>
#include <QPointer>
#include <QString>
#include <QStringList>
#include <QWizard>

#include "RemoteHost.h"

#include <functional>

class QTemporaryDir;
class RemoteFiles;
class WorkerPool;

class ExportWizard : public QWizard {
  Q_OBJECT
 public:
  enum PageId { SourcePage, RecipePage, ImatrixPage, ReviewPage, RunPage, ValidatePage, DonePage };

  explicit ExportWizard(QWidget* parent = nullptr);
  ~ExportWizard() override;

  // On the source page with the bundled tiny model selected (screenshots, demos).
  static ExportWizard* createDemo(QWidget* parent = nullptr);

  // The `razor` program (default: findRazorProgram()).
  void setRazorProgram(const QString& path);
  // Remote (docs/remote.md): the review (`razor pack --dry-run`) and the validation run on this server through
  // ssh, and paths are the server's; the pack job goes to the (remote) pool.
  void setRemote(const RemoteHost& host);
  QString razorProgram() const { return m_razor; }
  static QString findRazorProgram();
  // Folder of the GGUF presets (default: <source>/recipes/gguf or <app>/../share/razor/recipes/gguf).
  void setRecipesDir(const QString& dir);
  QString recipesDir() const { return m_recipesDir; }
  // Jobs go to this pool when set; otherwise the wizard runs its own `razor worker --cpu`.
  void setWorkerPool(WorkerPool* pool);

  // ---- the choices (also settable, for tests and for callers that start the wizard pre-filled) ----------
  void setModelDir(const QString& dir);
  QString modelDir() const;
  QStringList presetNames() const;     // the recipe combo's entries
  void selectPreset(const QString& name);  // a preset's file name ("instinct-q3.txt"), "uniform" or "file"
  void setRecipeFile(const QString& path); // with selectPreset("file")
  void setDefaultType(const QString& type);  // "" = the recipe's own default
  QString recipePath() const;          // "" for a uniform type
  QString defaultType() const;
  void setImatrixPath(const QString& path);
  QString imatrixPath() const;
  void setOutputPath(const QString& path);
  QString outputPath() const;
  // The types of the current recipe + default type that llama.cpp refuses without an imatrix.
  QStringList typesNeedingImatrix() const;
  QString imatrixWarning() const;

  // ---- state of the asynchronous pages -----------------------------------------------------------------
  bool reviewDone() const { return m_reviewDone; }
  bool reviewOk() const { return m_reviewOk; }
  QString reviewText() const { return m_reviewText; }  // the dry run's output
  double reviewBytes() const { return m_reviewBytes; }          // tensor data
  double reviewFileBytes() const { return m_reviewFileBytes; }  // the whole file, exact (0: not reported)
  double reviewBpw() const { return m_reviewBpw; }
  bool runDone() const { return m_runDone; }
  bool runOk() const { return m_runOk; }
  bool validationDone() const { return m_validateDone; }
  QString validationText() const { return m_validateText; }
  QString report() const;
  // The params of the pack job for the current choices, and the same as a `razor pack` command line.
  QJsonObject packParams(bool dryRun) const;
  QStringList packArguments(bool dryRun) const;
  double validationPpl() const { return m_validatePpl; }

  // ---- "Fit a file size" (recipe page): the whole-file allocation (the `allocate` job with mode gguf, razor
  // allocate --mode gguf): a target, the types allowed per role, the imatrix; the allocated recipe becomes the recipe ----
  void setAllocationTarget(const QString& target);              // "7879360B", "7.5MB", "3.5bits"
  void setRoleTypes(const QString& role, const QString& types); // gguf role, comma list ("" = any type)
  QJsonObject allocationParams() const;
  void startAllocation();
  bool allocationRunning() const { return m_allocStarted && !m_allocDone; }
  bool allocationDone() const { return m_allocDone; }
  bool allocationOk() const { return m_allocOk; }
  QJsonObject allocationReport() const { return m_allocReport; }  // razor.gguf_allocation/2
  // The roles a GGUF tensor can have (gguf::gguf_role) that the allocation can restrict.
  static QStringList allocationRoles();

 signals:
  void reviewFinished(bool ok);
  void runFinished(bool ok);
  void validationFinished(bool ok);
  void allocationFinished(bool ok);

 private:
  friend class WizSourcePage;
  friend class WizRecipePage;
  friend class WizImatrixPage;
  friend class WizReviewPage;
  friend class WizRunPage;
  friend class WizValidatePage;
  friend class WizDonePage;

  void startReview();
  void startRun();
  void cancelRun();
  void startValidation();
  void finishRun(bool ok, const QString& message);
  void finishAllocation(bool ok, const QJsonObject& report, const QString& message);

  // A worker job: in the pool when one is attached, else in a private `razor worker --cpu`.
  struct JobCallbacks {
    std::function<void(double, double, const QString&)> progress;
    std::function<void(const QString&, const QString&)> log;
    std::function<void(const QJsonObject&)> finished;
    std::function<void(const QString&, const QString&)> failed;
  };
  struct JobHandle {
    QString poolJob;
    QPointer<QObject> client;  // WorkerClient
    qint64 clientJob = -1;
  };
  JobHandle runJob(const QString& method, const QJsonObject& params, const QString& key, JobCallbacks cb);
  void cancelJob(const JobHandle& job);

  QString m_razor;
  QString m_recipesDir;
  QPointer<WorkerPool> m_pool;
  RemoteHost m_remote;
  RemoteFiles* m_files = nullptr;     // remote: uploads the chosen recipe to the server
  QString m_remoteRecipe, m_remoteRecipeFor;  // its server path, and the local file it came from
  JobHandle m_runJob, m_allocJob, m_reviewJob, m_validateJob;
  double m_validatePpl = 0;
  mutable QTemporaryDir* m_allocDir = nullptr;  // the allocated recipe and its report (owned; removed with the wizard)
  bool m_allocStarted = false, m_allocDone = false, m_allocOk = false;
  QJsonObject m_allocReport;

  int m_reviewGeneration = 0;
  bool m_reviewDone = false, m_reviewOk = false;
  QString m_reviewText;
  double m_reviewBytes = 0, m_reviewBpw = 0, m_reviewFileBytes = 0;
  bool m_runStarted = false, m_runDone = false, m_runOk = false;
  QString m_runMessage;
  double m_runFileBytes = 0;
  bool m_validateDone = false, m_validateOk = false;
  QString m_validateText;
};
