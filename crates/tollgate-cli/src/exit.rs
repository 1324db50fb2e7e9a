//! Exit codes and how errors are reported: 0 success; 1 a refused verify or a failed operation;
//! 2 invalid input, with one line naming the field and the reason.

use std::process::ExitCode;

/// A command's failure, already sorted into its exit code.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad flags or values (exit 2).
    Invalid(String),
    /// The operation failed: not found, conflict, forbidden, storage (exit 1).
    Failed(anyhow::Error),
}

impl CliError {
    /// Prints the error on standard error and returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Self::Invalid(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
            Self::Failed(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(1)
            }
        }
    }
}

impl From<tollgate::Error> for CliError {
    fn from(error: tollgate::Error) -> Self {
        match error {
            tollgate::Error::Validation(validation) => Self::Invalid(validation.to_string()),
            other => Self::Failed(other.into()),
        }
    }
}

impl From<tollgate::ValidationError> for CliError {
    fn from(error: tollgate::ValidationError) -> Self {
        Self::Invalid(error.to_string())
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        Self::Failed(error)
    }
}

/// Results of commands.
pub(crate) type CliResult<T = ExitCode> = Result<T, CliError>;
