//! The server runs its scheduled jobs: on start the leader catches up the planning it
//! missed, once, and the run is in the ledger.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tests::*;

#[tokio::test]
async fn a_starting_server_catches_up_planning_once() {
    let app = spawn_app_with(Options {
        jobs: true,
        ..Options::default()
    })
    .await;
    let db = &app.state.db;
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs = entity::job_run::Entity::find()
            .filter(entity::job_run::Column::Job.eq("plan"))
            .filter(entity::job_run::Column::Status.eq("done"))
            .all(db)
            .await
            .unwrap();
        if !runs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(runs.len(), 1, "planning ran once on start");
    let created = runs[0].stats.as_ref().unwrap()["created"].as_u64().unwrap();
    let tasks = entity::visit_task::Entity::find().count(db).await.unwrap();
    assert!(created > 0);
    assert_eq!(tasks, created, "every planned visit is a task, none twice");
}
