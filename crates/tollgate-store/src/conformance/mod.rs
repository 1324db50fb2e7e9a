//! The backend conformance suite. Each backend runs every case through one macro call:
//!
//! ```ignore
//! tollgate_store::conformance_tests!(|| async { my_backend::open_fresh_store().await });
//! ```
//!
//! The factory must return a fresh, empty store each time it is called; the cases that move data
//! from one store to another (`dump_round_trip`) call it twice.

pub mod accounts;
pub mod agent_usage;
pub mod agents;
pub mod audit;
pub mod budgets;
pub mod dump;
mod dump_content;
pub mod fixtures;
pub mod limits;
pub mod projects;
pub mod quota;
pub mod recording;
pub mod reservations;
pub mod sessions;
pub mod subjects;
pub mod throttle;
pub mod token_owners;
pub mod tokens;
pub mod traces;
pub mod usage;
pub mod users;

/// Generates one `#[tokio::test]` per conformance case, grouped in modules by capability.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            tokens => [
                insert_and_get_round_trip,
                duplicate_id_or_hash_conflicts,
                missing_token_is_not_found,
                lookup_by_hash_finds_only_known_hashes,
                list_filters_by_owner_project_and_status,
                list_pages_cover_everything_once_newest_first,
                revoke_is_idempotent_and_audited_once,
                rotate_keeps_the_old_secret_for_the_grace_period,
                rotate_of_revoked_or_missing_token_is_refused,
                update_changes_only_the_patched_fields,
                touch_records_last_use_and_never_goes_back,
                cleanup_deletes_only_long_inactive_tokens,
            ];
            token_owners => [
                token_records_carry_owner_and_project_names,
                imposed_flags_round_trip_and_patches_add_to_them,
                token_owner_role_follows_the_users_role,
            ];
            audit => [
                every_token_change_appends_a_chained_entry,
                audit_list_filters_and_pages,
                account_and_project_changes_append_chained_entries,
            ];
            users => [
                user_insert_and_get_round_trip,
                usernames_and_emails_are_unique_case_insensitively,
                missing_user_is_not_found,
                list_users_filters_and_pages,
                suspend_revokes_tokens_and_sessions,
                last_active_admin_cannot_be_removed,
                deleted_users_stay_deleted,
                login_failures_lock_and_unlock,
                suppressed_failures_count_without_an_event,
                password_change_revokes_sessions,
                rehash_keeps_sessions_and_loses_to_a_change,
                tokens_need_an_active_user,
                user_by_email_finds_the_user_with_credentials,
                email_change_is_audited_and_stays_unique,
                concurrent_email_changes_to_one_address_let_one_win,
            ];
            accounts => [
                service_account_insert_and_get_round_trip,
                list_service_accounts_pages_newest_first,
                owner_names_are_one_namespace,
                suspending_a_service_account_revokes_its_live_tokens,
                tokens_need_an_existing_active_owner,
                owners_resolve_by_id_and_by_name,
                concurrent_suspend_and_token_insert_leave_no_live_token,
            ];
            projects => [
                project_insert_and_get_round_trip,
                project_names_are_unique_case_insensitively,
                list_projects_pages_all_and_by_member,
                put_member_adds_and_changes_roles,
                members_need_an_existing_project_and_owner,
                removing_a_member_revokes_only_its_tokens_in_the_project,
                making_a_member_a_viewer_revokes_its_tokens_in_the_project,
                tokens_need_an_existing_project,
            ];
            sessions => [
                start_session_round_trip,
                start_session_refuses_users_who_cannot_log_in,
                refresh_rotates_and_reuse_revokes_the_family,
                refresh_of_ended_sessions_changes_nothing,
                revoke_session_is_idempotent,
                list_sessions_pages_newest_first,
                cleanup_deletes_only_ended_sessions,
                concurrent_suspend_and_login_leave_no_live_session,
            ];
            usage => [
                usage_is_appended_and_rolled_up_hourly,
                later_batches_add_to_existing_rollups,
                summaries_cover_whole_hours_and_respect_the_limit,
                purge_removes_old_raw_events_and_keeps_rollups,
                rollups_keep_attribution_after_token_deletion,
                concurrent_batches_all_land,
            ];
            recording => [
                event_ids_count_once_within_and_across_batches,
                concurrent_repeats_of_one_event_count_once,
                sums_saturate_instead_of_failing,
                purge_forgets_the_keys_of_purged_events,
                dead_letters_round_trip_and_page,
            ];
            limits => [
                limits_are_created_replaced_and_audited,
                many_limits_are_put_in_one_transaction,
                deleting_a_limit_keeps_its_counters,
                limits_list_by_subject_in_a_stable_order,
                new_counters_start_from_rolled_up_usage,
                reservations_are_all_or_nothing,
                concurrent_reservations_never_pass_the_maximum,
                counters_are_per_window_and_purged_after_they_end,
                usage_batches_apply_counter_deltas_and_shadow_hits,
                rate_limits_round_trip_and_follow_their_token,
                prices_round_trip_and_are_audited,
            ];
            quota => [
                leases_never_pass_the_maximum,
                concurrent_leases_share_exactly_the_maximum,
                leases_need_a_registered_holder,
                returns_give_back_only_unused_units,
                summaries_tell_leased_units_from_stranded_ones,
                purging_quota_state_deletes_only_what_ended,
            ];
            reservations => [
                holds_on_one_counter_add_up_and_refusals_leave_no_trace,
                a_reservation_id_is_stored_once,
                settling_replaces_holds_with_actual_usage,
                settling_twice_counts_once,
                settling_a_released_reservation_records_nothing,
                settling_with_a_recorded_event_id_only_returns_the_holds,
                settling_checks_the_token_and_the_id,
                expired_reservations_return_their_holds,
                expiry_covers_every_reservation,
            ];
            agents => [
                agents_round_trip_list_and_change,
                credentials_follow_their_agent,
                provider_keys_round_trip_change_and_delete,
                delivery_reads_the_agent_and_its_enabled_key,
                rewrapping_swaps_only_rows_still_under_the_old_key,
            ];
            agent_usage => [
                agent_usage_is_attributed_and_deduplicated_per_agent,
                usage_groups_page_through_every_group_once,
                usage_groups_without_latency_are_the_same_groups_without_histograms,
            ];
            traces => [
                traces_are_attributed_filtered_and_paged,
                purges_go_by_age_then_by_total_size,
            ];
            throttle => [
                login_slots_are_taken_atomically_and_given_back,
            ];
            budgets => [
                leases_move_the_account_and_the_ledger_together,
                exhaustion_flags_the_account_and_allocations_keep_their_floor,
                a_refresh_replaces_its_lease_in_one_step,
                overdue_leases_expire_on_access_and_by_sweep,
                concurrent_leases_never_pass_the_allocation,
                requests_are_decided_once,
                delegated_leases_spend_their_parents_grant,
            ];
            subjects => [
                limits_for_owners_and_projects_round_trip,
                usage_groups_and_filters_by_owner_and_project_id,
                attribution_outlives_the_token,
            ];
            dump => [
                dump_tables_cover_the_schema,
                loads_refuse_what_the_schema_does_not_have,
            ];
        );
        $crate::conformance_tests!(@pairs $factory; dump_round_trip => dump [
            a_dump_loads_into_an_empty_store_unchanged,
        ]);
    };
    (@cases $factory:expr; $($module:ident => [$($case:ident),* $(,)?];)*) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[::tokio::test]
                    async fn $case() {
                        let store = ($factory)().await;
                        $crate::conformance::$module::$case(&store).await;
                    }
                )*
            }
        )*
    };
    // Cases over two fresh stores: data moves from the first to the second.
    (@pairs $factory:expr; $test_module:ident => $module:ident [$($case:ident),* $(,)?]) => {
        mod $test_module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test]
                async fn $case() {
                    let source = ($factory)().await;
                    let target = ($factory)().await;
                    $crate::conformance::$module::$case(&source, &target).await;
                }
            )*
        }
    };
}
