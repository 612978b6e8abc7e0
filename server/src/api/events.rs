use super::Api;
use super::Rpc;
use crate::core::events::Frame;
use clawplane_proto::v1::{
    EventServiceWatchRequest, EventServiceWatchResponse, event_service_server::EventService,
    event_service_watch_response,
};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tonic::{Request, Response, Status};

type WatchStream = Pin<Box<dyn Stream<Item = Result<EventServiceWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for Api {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<EventServiceWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let who = self.authorize(&req, Rpc::EventWatch)?;
        let r = req.into_inner();
        let stream = self
            .gw
            .watch(
                r.after_seq,
                r.follow_only,
                r.filter.unwrap_or_default(),
                &who,
            )?
            .map(|item| {
                item.map(|frame| EventServiceWatchResponse {
                    frame: Some(match frame {
                        Frame::Event(ev) => {
                            event_service_watch_response::Frame::Event((*ev).clone())
                        }
                        Frame::Progress(p) => event_service_watch_response::Frame::Progress(p),
                    }),
                })
                .map_err(Status::from)
            });
        Ok(Response::new(Box::pin(stream)))
    }
}
