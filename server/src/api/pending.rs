//! Services whose contract is fixed but whose implementation lands with later features:
//! they authorize, then answer UNIMPLEMENTED naming what is missing.

use super::Api;
use crate::{auth::Scope, error::Error};
use clawplane_proto::v1::*;
use tonic::{Request, Response, Status};

macro_rules! pending {
    ($trait:path; $( $method:ident($req:ty) -> $resp:ty, $scope:expr, $name:literal; )*) => {
        #[tonic::async_trait]
        impl $trait for Api {
            $(
                async fn $method(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.authorize(&req, $scope)?;
                    Err(Error::NotImplemented($name).into())
                }
            )*
        }
    };
}

pending! { device_service_server::DeviceService;
    list_devices(ListDevicesRequest) -> ListDevicesResponse, Scope::Pairing, "clawplane.v1.DeviceService/ListDevices (device pairing)";
    get_device(GetDeviceRequest) -> GetDeviceResponse, Scope::Pairing, "clawplane.v1.DeviceService/GetDevice (device pairing)";
    rename_device(RenameDeviceRequest) -> RenameDeviceResponse, Scope::Pairing, "clawplane.v1.DeviceService/RenameDevice (device pairing)";
    delete_device(DeleteDeviceRequest) -> DeleteDeviceResponse, Scope::Pairing, "clawplane.v1.DeviceService/DeleteDevice (device pairing)";
    list_pairing_requests(ListPairingRequestsRequest) -> ListPairingRequestsResponse, Scope::Pairing, "clawplane.v1.DeviceService/ListPairingRequests (device pairing)";
    approve_pairing_request(ApprovePairingRequestRequest) -> ApprovePairingRequestResponse, Scope::Pairing, "clawplane.v1.DeviceService/ApprovePairingRequest (device pairing)";
    reject_pairing_request(RejectPairingRequestRequest) -> RejectPairingRequestResponse, Scope::Pairing, "clawplane.v1.DeviceService/RejectPairingRequest (device pairing)";
    rotate_device_token(RotateDeviceTokenRequest) -> RotateDeviceTokenResponse, Scope::Pairing, "clawplane.v1.DeviceService/RotateDeviceToken (device tokens)";
    revoke_device_token(RevokeDeviceTokenRequest) -> RevokeDeviceTokenResponse, Scope::Pairing, "clawplane.v1.DeviceService/RevokeDeviceToken (device tokens)";
}

pending! { channel_service_server::ChannelService;
    list_channels(ListChannelsRequest) -> ListChannelsResponse, Scope::Read, "clawplane.v1.ChannelService/ListChannels (channel adapters)";
    get_channel(GetChannelRequest) -> GetChannelResponse, Scope::Read, "clawplane.v1.ChannelService/GetChannel (channel adapters)";
    send_message(SendMessageRequest) -> SendMessageResponse, Scope::Write, "clawplane.v1.ChannelService/SendMessage (channel delivery)";
}
